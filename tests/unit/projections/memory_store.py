"""An in-memory stand-in for the projection repository, with the same write semantics
(upsert, first-writer-wins, add-and-drop-zero), so the pure folds can be driven batch by
batch in any interleaving without a database. The SQL repository itself is tested on real
SQLite and PostgreSQL in tests/integration/projections."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from services.projections.domain.batch import MODELS, Batch, Item, Loaded, Needs, needs
from services.projections.domain.directory import is_filed, later, merge_link
from tests.unit.projections.projection_workload import Logged

Row = dict[str, Any]


class MemoryStore:
    def __init__(self) -> None:
        self.registrations: dict[str, Row] = {}
        self.claims: dict[str, Row] = {}
        self.disputes: dict[str, Row] = {}
        self.intervals: dict[tuple[str, str], Row] = {}
        self.totals: dict[tuple[Any, ...], Row] = {}
        self.product_totals: dict[tuple[Any, ...], Row] = {}
        self.domains: dict[Any, Row] = {}
        self.crm_ids: dict[Any, Row] = {}
        self.names: dict[Any, Row] = {}
        self.unfiled_names: dict[Any, Row] = {}
        self.name_keys: dict[Any, Row] = {}
        self.links: dict[Any, Row] = {}
        self.link_facts: dict[Any, Row] = {}
        self.members: dict[Any, Row] = {}
        self.breaches: dict[Any, Row] = {}
        self.timeline: dict[Any, Row] = {}

    def load(self, wanted: Needs) -> Loaded:
        loaded = Loaded()
        loaded.registrations = {i: copy.deepcopy(self.registrations[i])
                                for i in wanted.registrations if i in self.registrations}
        loaded.claims = {i: copy.deepcopy(self.claims[i])
                         for i in wanted.claims if i in self.claims}
        loaded.disputes = {i: copy.deepcopy(self.disputes[i])
                           for i in wanted.disputes if i in self.disputes}
        loaded.open_intervals = {
            row["holder_id"]: copy.deepcopy(row) for row in self.intervals.values()
            if row["holder_id"] in wanted.holders and row["valid_to"] is None
            and row["kind"] == "protection"
        }
        return loaded

    def write(self, batch: Batch) -> None:
        for row in batch.changed_registrations():
            self.registrations[row["id"]] = copy.deepcopy(row)
        for row in batch.changed_claims():
            self.claims[row["id"]] = copy.deepcopy(row)
        for row in batch.changed_disputes():
            self.disputes[row["id"]] = copy.deepcopy(row)
        deltas = batch.pipeline()
        for rows, table, width in ((deltas.total_rows(), self.totals, 4),
                                   (deltas.product_rows(), self.product_totals, 5)):
            for row in rows:
                key = tuple(row.values())[:width]
                stored = table.setdefault(key, {**row, "count": 0, "amount_e4": 0})
                stored["count"] += row["count"]
                stored["amount_e4"] += row["amount_e4"]
                if stored["count"] == 0 and stored["amount_e4"] == 0:
                    del table[key]
        self.intervals.update({k: copy.deepcopy(v) for k, v in batch.intervals.items()})
        for at, row in batch.names.items():  # the latest filer, as the store ("latest")
            held = self.names.get(at)
            self.names[at] = dict(row) if held is None else dict(later(held, row))
        for at in batch.unfiled_back:
            self.unfiled_names.pop(at, None)
        for source, target in ((batch.domains, self.domains), (batch.crm_ids, self.crm_ids),
                               (batch.unfiled_names, self.unfiled_names),
                               (batch.name_keys, self.name_keys),
                               (batch.members, self.members), (batch.timeline, self.timeline)):
            for key, row in source.items():
                target.setdefault(key, dict(row))
        for pair, fact in batch.link_facts.items():
            held = self.link_facts.get(pair)
            self.link_facts[pair] = dict(fact) if held is None else merge_link(held, fact)
        for alias in {alias for alias, _ in batch.link_facts}:
            self.links.pop(alias, None)
            live = [f for (a, _), f in self.link_facts.items() if a == alias and f["holders"] > 0]
            if live:
                first = min(live, key=lambda f: (f["linked_at"], f["canonical_key"]))
                self.links[alias] = {k: first[k] for k in (
                    "account_key", "canonical_key", "matched_by", "score", "linked_at")}
        self.breaches.update(batch.breaches)

    def apply(self, records: Sequence[Logged], models: Sequence[str] = MODELS) -> Batch:
        items = [Item(r.envelope.id, r.envelope.time, r.event, frozenset(models),
                      r.event.to_data()) for r in records]
        batch = Batch(self.load(needs(items))).fold_all(items)
        self.write(batch)
        return batch

    def filed_names(self) -> set[tuple[str, str, str]]:
        """(country, name, key) of the filed names, as the look-ups read them
        (`schema.name_filed`)."""
        return {at for at, row in self.names.items() if is_filed(row, self.unfiled_names)}

    def snapshot(self) -> dict[str, Any]:
        return {name: dict(sorted(getattr(self, name).items())) for name in (
            "registrations", "claims", "disputes", "intervals", "totals", "product_totals",
            "domains", "crm_ids", "names", "unfiled_names", "name_keys", "links", "members",
            "breaches", "timeline")}
