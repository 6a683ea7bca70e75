"""The three services. They share `shared/` and never import each other."""
