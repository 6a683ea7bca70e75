"""The pure part of intake: turning a validated command into the event the log keeps."""
