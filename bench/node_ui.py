"""Server time of the node's pages and JSON API on a generated node, through Flask's test client.

The test client calls the WSGI app directly (no socket, no browser), so what `time.perf_counter` sees
around `client.get` / `client.post` is the time the server spends: routing, session, queries, templates,
and for a reception the signed log write and its commit (WAL, synchronous=FULL).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from node import queries, workflow as wf
from node.sync.state import Dossier, User
from node.users import Officer
from node.web import create_app

from . import gen
from .people import person
from .timing import Plan, Result

WORKLIST_GOAL_MS, SEARCH_GOAL_MS, RECEIVE_GOAL_MS = 50.0, 50.0, 30.0
# (label, query, which page): names with and without diacritics, as officers type them.
SEARCHES = [
    ("common family name 'nguyen'", "nguyen", "first"),
    ("common family name 'nguyen', deep page", "nguyen", "deep"),
    ("full name with diacritics", "Nguyễn Thị Hương", "first"),
    ("full name without diacritics", "nguyen thi huong", "first"),
    ("family name 'Đặng'", "Đặng", "first"),
    ("family name 'dang' (folded)", "dang", "first"),
    ("family + middle 'tran van'", "tran van", "first"),
    ("rare full name", "Lý Quốc Khánh", "first"),
    ("given name 'hương'", "hương", "first"),
]
# (label, worklist, role): every worklist page also counts the six worklists for its tabs.
WORKLISTS = [
    ("mine (reception)", "mine", "reception"),
    ("mine (specialist)", "mine", "specialist"),
    ("mine (leader)", "mine", "leader"),
    ("overdue", "overdue", "leader"),
    ("due_soon", "due_soon", "leader"),
    ("all in progress", "all", "admin"),
]


@dataclass
class Bench:
    """A generated node opened in a Flask app, with logged-in clients per role."""

    app: Any
    clients: dict[str, Any]
    officers: dict[str, Officer]
    rng: random.Random
    page_size: int
    api_session: tuple | None = None  # (client, receive URL, headers) once `api()` has logged in

    @classmethod
    def open(cls, data_dir: Path, seed: int = 7) -> "Bench":
        clock = gen.Clock(gen.END)
        app = create_app({"DATA_DIR": str(data_dir), "WTF_CSRF_ENABLED": False, "TESTING": False, "NOW": clock})
        clients, officers = {}, {}
        for role in gen.STAFF:
            name = gen.username(role, 0)
            client = app.test_client()
            resp = client.post("/login", data={"username": name, "password": gen.PASSWORD})
            if resp.status_code != 302:
                raise RuntimeError(f"login as {name} failed: {resp.status_code}")
            clients[role] = client
            officers[role] = Officer.of(User.get(User.username == name))
        return cls(app, clients, officers, random.Random(seed), app.config["PAGE_SIZE"])

    def close(self) -> None:
        self.app.extensions["motcua_node"].close()

    def plan(self, name: str, group: str, goal: float | None, call: Callable[[int], Any],
             expected: int = 200) -> Plan:
        return Plan(Result(name, group, goal, expected=expected), call)

    # ------------------------------------------------------------ what to ask for

    def marks(self) -> tuple[str, str]:
        return wf.horizon(gen.END)

    def deep_page(self, total: int) -> int:
        return max(1, -(-total // self.page_size))

    def worklist_pages(self, name: str, role: str) -> list[tuple[str, int]]:
        total = queries.worklist(name, self.officers[role], self.marks(), 1, self.page_size).total
        last = self.deep_page(total)
        pages = [("p1", 1)] + ([(f"p{last} (last)", last)] if last > 1 else [])
        return [(f"{label} [{total:,} rows]", page) for label, page in pages]

    def search_page(self, q: str, which: str) -> tuple[int, int]:
        total = queries.search(q, 1, self.page_size).total
        return total, (1 if which == "first" else self.deep_page(total))

    def sample_codes(self, count: int = 200) -> list[str]:
        top = Dossier.select().count()
        rowids = self.rng.sample(range(1, top + 1), min(count, top))
        marks = ",".join("?" * len(rowids))
        db = Dossier._meta.database
        return [r[0] for r in db.execute_sql(f"SELECT code FROM dossier WHERE rowid IN ({marks})", rowids)]

    def reception_body(self) -> dict[str, Any]:
        codes, weights = zip(*gen.PROCEDURE_WEIGHTS.items(), strict=True)
        return dict(person(self.rng, gen.END.date()), procedure_code=self.rng.choices(codes, weights)[0],
                    sets="1", pages=str(self.rng.randint(1, 8)), return_method="desk")

    # ------------------------------------------------------------ the UI

    def ui(self) -> list[Plan]:
        out = []
        for label, name, role in WORKLISTS:
            client = self.clients[role]
            for page_label, page in self.worklist_pages(name, role):
                url = f"/worklist/{name}?page={page}"
                out.append(self.plan(f"worklist {label} {page_label}", "worklist", WORKLIST_GOAL_MS,
                                     lambda i, c=client, u=url: c.get(u)))
        client = self.clients["reception"]
        for label, q, which in SEARCHES:
            total, page = self.search_page(q, which)
            out.append(self.plan(f"search {label} [{total:,} hits, p{page}]", "search", SEARCH_GOAL_MS,
                                 lambda i, q=q, p=page: client.get("/search", query_string={"q": q, "page": p})))
        db = Dossier._meta.database
        code, id_number = db.execute_sql("SELECT code, applicant_id_number FROM dossier LIMIT 1 OFFSET ?",
                                         (self.rng.randrange(Dossier.select().count()),)).fetchone()
        for label, q in (("by ID number", id_number), ("by code, one day", code[:-5]), ("by exact code", code)):
            total, _ = self.search_page(q, "first")
            out.append(self.plan(f"search {label} [{total:,} hits]", "search", SEARCH_GOAL_MS,
                                 lambda i, q=q: client.get("/search", query_string={"q": q})))
        codes = self.sample_codes()
        out.append(self.plan("dossier page (random dossiers)", "dossier", None,
                             lambda i: client.get(f"/dossier/{codes[i % len(codes)]}")))
        return out

    def ui_receive(self) -> list[Plan]:
        """Receptions at the counter: run after the reads, which they would otherwise change."""
        client = self.clients["reception"]
        return [self.plan("receive a dossier (POST /counter, signed log write)", "receive", RECEIVE_GOAL_MS,
                          lambda i: client.post("/counter", data=self.reception_body()), expected=302)]

    # ------------------------------------------------------------ the JSON API (when node/web/api.py exists)

    def api(self) -> list[Plan]:
        """The JSON API's worklists, searches and dossier detail ([] without the API); sets `api_receive`."""
        needed = ("api.token", "api.dossiers", "api.search", "api.dossier", "api.receive")
        if not all(e in self.app.view_functions for e in needed):
            return []
        with self.app.test_request_context():
            from flask import url_for

            urls = {e: url_for(e, **({"code": "CODE"} if e == "api.dossier" else {})) for e in needed}
        headers = {}
        for role in gen.STAFF:
            client = self.app.test_client()
            resp = client.post(urls["api.token"], json={"username": gen.username(role, 0), "password": gen.PASSWORD})
            if resp.status_code != 200:
                raise RuntimeError(f"API token refused for {gen.username(role, 0)}: {resp.status_code}")
            headers[role] = {"Authorization": f"Bearer {resp.get_json()['token']}"}
        client = self.app.test_client()
        out = []
        for label, name, role in WORKLISTS:
            for page_label, page in self.worklist_pages(name, role):
                out.append(self.plan(f"api worklist {label} {page_label}", "api-worklist", WORKLIST_GOAL_MS,
                                     lambda i, h=headers[role], n=name, p=page: client.get(
                                         urls["api.dossiers"], query_string={"worklist": n, "page": p}, headers=h)))
        h = headers["reception"]
        for label, q, which in SEARCHES[:5]:
            total, page = self.search_page(q, which)
            out.append(self.plan(f"api search {label} [{total:,} hits, p{page}]", "api-search", SEARCH_GOAL_MS,
                                 lambda i, q=q, p=page: client.get(urls["api.search"],
                                                                   query_string={"q": q, "page": p}, headers=h)))
        codes = self.sample_codes()
        out.append(self.plan("api dossier detail (random dossiers)", "api-dossier", None,
                             lambda i: client.get(urls["api.dossier"].replace("CODE", codes[i % len(codes)]),
                                                  headers=h)))

        self.api_session = (client, urls["api.receive"], h)
        return out

    def api_receive(self) -> list[Plan]:
        """Receptions through the API (after `api()`, which found it and logged in); [] without the API."""
        if self.api_session is None:
            return []
        client, url, headers = self.api_session

        def receive(i: int):
            body = self.reception_body()
            body.update(sets=1, pages=int(body["pages"]))
            return client.post(url, json=body, headers=headers)

        return [self.plan("api receive a dossier (POST /api/v1/dossiers, signed log write)", "api-receive",
                          RECEIVE_GOAL_MS, receive, expected=201)]
