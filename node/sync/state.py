"""The synced tables: the state that changes turn into, the same on node and hub.

Models are declared once and bound at run time through `database` (a peewee DatabaseProxy).
Times are text `YYYY-MM-DD HH:MM:SS` in Vietnam local time (UTC+7, no daylight saving): they sort,
compare and travel the same on SQLite and PostgreSQL. Money is whole đồng in integers; flags are 0/1.
"""

from __future__ import annotations

import peewee as pw

database = pw.DatabaseProxy()


class Base(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Procedure(Base):
    """One version of a procedure of the catalogue; a dossier keeps the version in force when received."""

    code = pw.CharField()
    version = pw.IntegerField()
    effective_from = pw.CharField()  # YYYY-MM-DD
    name_vi = pw.TextField()
    name_en = pw.TextField()
    field = pw.TextField()  # lĩnh vực
    level = pw.CharField(default="commune")
    time_kind = pw.CharField()  # same_day | working_days | calendar_days
    time_value = pw.IntegerField(default=0)
    cutoff_15h = pw.IntegerField(default=0)  # civil status & certification: after 15:00 -> next working day
    fee_rule = pw.TextField(default="{}")  # JSON
    documents = pw.TextField(default="[]")  # JSON list of {name_vi, name_en, copy_kind, count}
    online_level = pw.CharField(default="none")  # none | partial | full
    interconnected = pw.IntegerField(default=0)
    supplement_rule = pw.CharField(default="restart")  # pause | restart
    active = pw.IntegerField(default=1)

    class Meta:
        indexes = ((("code", "version"), True),)


class CalendarDay(Base):
    """A day that differs from the default week: a day off on a weekday, or a working Saturday/Sunday.

    Keyed per layer (node/catalogue.py reads the id, not the columns): "*:<day>" the hub's calendar (every
    unit), "<unit code>:<day>" a commune's own override (that unit only, wins over the hub's), "<day>" the
    base layer (the seed, and rows written before per-unit keys).
    """

    id = pw.CharField(primary_key=True)
    unit = pw.CharField(default="")  # "*" the hub's, a unit code, "" the base layer
    day = pw.CharField(default="", index=True)  # YYYY-MM-DD
    kind = pw.CharField()  # day_off | working_day | normal (a withdrawn override)
    name = pw.TextField(default="")
    version = pw.CharField(default="")  # of the put that set it: the latest put wins


def convert_calendar_days(db: pw.Database) -> int:
    """Bring a calendar_day table keyed by `day` (before per-unit keys) to the id key; returns rows moved.

    The rows keep their old key as id (the entity id of the changes that wrote them), in the base layer.
    No-op when the table is missing or already converted; SQLite and PostgreSQL alike.
    """
    columns = {c.name for c in db.get_columns("calendar_day")} if db.table_exists("calendar_day") else {"id"}
    if "id" in columns:
        return 0
    version = "version" if "version" in columns else "''"  # before versions (a node from before version 4)
    rows = db.execute_sql(f"SELECT day, kind, name, {version} FROM calendar_day").fetchall()
    db.execute_sql("DROP TABLE calendar_day")
    db.create_tables([CalendarDay])
    for day, kind, name, version in rows:
        CalendarDay.insert(id=day, unit="", day=day, kind=kind, name=name or "", version=version or "").execute()
    return len(rows)


class User(Base):
    id = pw.CharField(primary_key=True)
    username = pw.CharField()
    full_name = pw.TextField()
    roles = pw.CharField()  # comma separated: reception, specialist, leader, admin
    password_hash = pw.TextField()
    active = pw.IntegerField(default=1)
    unit_code = pw.CharField(default="")
    phone = pw.CharField(default="")
    field_versions = pw.TextField(default="{}")  # JSON {field: version}: the latest write of a field wins

    class Meta:
        # Usernames are unique within a unit: two communes may both have "admin" and meet at the hub.
        indexes = ((("unit_code", "username"), True),)


class Dossier(Base):
    id = pw.CharField(primary_key=True)
    # Unique by construction (unit, node tag, date, the node's own counter), not by an index: a clash from
    # a misconfigured node must show as two dossiers, never make one of them vanish.
    code = pw.CharField(index=True)
    unit_code = pw.CharField(index=True)
    procedure_code = pw.CharField(index=True)
    procedure_version = pw.IntegerField()
    channel = pw.IntegerField(default=1)  # 1 in person, 2 online, 3 post
    status = pw.IntegerField(index=True)
    step = pw.CharField(default="reception")  # reception | processing | signing | result
    applicant_name = pw.TextField()
    applicant_folded = pw.TextField(default="")
    applicant_id_number = pw.CharField(index=True, default="")
    applicant_birth_date = pw.CharField(default="")
    applicant_address = pw.TextField(default="")
    applicant_phone = pw.CharField(default="")
    applicant_email = pw.CharField(default="")
    owner_name = pw.TextField(default="")
    matter = pw.TextField(default="")
    sets = pw.IntegerField(default=1)
    return_method = pw.CharField(default="desk")  # desk | post | online
    received_at = pw.CharField(index=True)
    received_by = pw.CharField(default="")
    appointment_at = pw.CharField(index=True, default="")
    original_appointment_at = pw.CharField(default="")
    apology_at = pw.CharField(default="")
    apology_reason = pw.TextField(default="")
    handler_id = pw.CharField(index=True, default="")
    step_deadline = pw.CharField(default="")
    paused_at = pw.CharField(default="")
    paused_minutes_left = pw.IntegerField(default=0)
    fee_amount = pw.IntegerField(default=0)
    fee_paid = pw.IntegerField(default=0)
    paid_online = pw.IntegerField(default=0)
    transferred_at = pw.CharField(default="")
    result_at = pw.CharField(default="")
    finished_at = pw.CharField(index=True, default="")
    returned_at = pw.CharField(default="")
    rating = pw.CharField(default="")
    rating_reason = pw.TextField(default="")
    reason = pw.TextField(default="")  # refusal / stop / withdrawal / supplement reason (latest)
    supplement_items = pw.TextField(default="[]")  # JSON list of documents asked for
    result_digitised = pw.IntegerField(default=0)
    updated_hlc = pw.CharField(default="")  # the latest change merged into this row
    # Merge bookkeeping (see node/sync/merge.py). A version is "<hlc>~<node_id>": it sorts like (hlc, node_id).
    origin_node = pw.CharField(default="")  # the node that received (created) it
    version = pw.CharField(default="")  # version of the create
    status_version = pw.CharField(default="")  # version of the last applied action: the next one's base
    field_versions = pw.TextField(default="{}")  # JSON {field: version} of edited fields (absent = create)
    # Its documents, counted again whenever one arrives (so the same on every replica): the indicators' read
    # side needs no join. digitised: not "none"; reused: reused_document or reused_result.
    doc_total = pw.IntegerField(default=0)
    doc_digitised = pw.IntegerField(default=0)
    doc_reused = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("status", "appointment_at"), False),)


class DossierDocument(Base):
    id = pw.CharField(primary_key=True)
    dossier_id = pw.CharField(index=True)
    position = pw.IntegerField(default=0)
    name = pw.TextField()
    copy_kind = pw.CharField(default="photocopy")  # original | certified | photocopy
    count = pw.IntegerField(default=1)
    digitised = pw.CharField(default="none")  # none | digitised | reused_document | reused_result


class Attachment(Base):
    id = pw.CharField(primary_key=True)
    dossier_id = pw.CharField(index=True)
    document_id = pw.CharField(default="")
    sha256 = pw.CharField(index=True)
    filename = pw.TextField()
    mime = pw.CharField()
    size = pw.IntegerField()
    uploaded_by = pw.CharField(default="")
    uploaded_at = pw.CharField(default="")


class DossierEvent(Base):
    """The hand-over history (form 05) and every action on a dossier, materialised from changes."""

    id = pw.CharField(primary_key=True)  # the change's node_id:seq
    dossier_id = pw.CharField(index=True)
    at = pw.CharField()
    hlc = pw.CharField()
    action = pw.CharField()
    from_status = pw.IntegerField(null=True)
    to_status = pw.IntegerField(null=True)
    by_user = pw.CharField(default="")
    by_name = pw.TextField(default="")
    to_user = pw.CharField(default="")
    to_name = pw.TextField(default="")
    unit = pw.TextField(default="")
    step_deadline = pw.CharField(default="")
    note = pw.TextField(default="")
    applied = pw.IntegerField(default=1)
    # Actions on the status chain (every action but the reception event): their version, the version they
    # were based on, and the fields they set (JSON), so the chain can be walked again in any arrival order.
    chain = pw.IntegerField(default=0)
    version = pw.CharField(default="")
    base = pw.CharField(default="")
    sets = pw.TextField(default="{}")

    class Meta:
        indexes = ((("dossier_id", "base"), False),)


class NodeRecord(Base):
    """The key registry: every enrolled replica, written only by the hub and pulled by every node."""

    node_id = pw.CharField(primary_key=True)
    public_key = pw.CharField()
    kind = pw.CharField(default="commune")  # commune | laptop | hub
    unit_code = pw.CharField(default="")
    unit_name = pw.TextField(default="")
    scope = pw.TextField(default="")  # comma-separated unit codes this node receives
    status = pw.CharField(default="active")  # active | revoked | quarantined
    enrolled_at = pw.CharField(default="")
    revoked_at = pw.CharField(default="")
    version = pw.CharField(default="")  # of the put that set it: the latest put wins


class DossierOrigin(Base):
    """The fields a dossier's actions may change, as its create set them: where a re-walk of the chain starts."""

    id = pw.CharField(primary_key=True)  # dossier id
    version = pw.CharField()
    status = pw.IntegerField()
    fields = pw.TextField()  # JSON


class FieldWrite(Base):
    """One edit of one field (an append-only collection): the value of a field is its latest write, and
    two writes on the same base with different values are a conflict."""

    id = pw.CharField(primary_key=True)  # "<node_id>:<seq>:<field>"
    entity = pw.CharField()
    entity_id = pw.CharField()
    field = pw.CharField()
    version = pw.CharField()
    base = pw.CharField()
    value = pw.TextField()  # canonical JSON
    node_id = pw.CharField()
    by_user = pw.CharField(default="")
    by_name = pw.TextField(default="")
    at = pw.CharField(default="")

    class Meta:
        indexes = ((("entity_id", "field", "base"), False),)


class Conflict(Base):
    """Concurrent writes a person must look at: two edits of one field on the same base ("field"), or two
    actions on the same base ("status"). Derived by every replica alike from the changes it holds."""

    id = pw.CharField(primary_key=True)  # "<dossier_id>:<field or 'status'>:<base>"
    dossier_id = pw.CharField(index=True)
    unit_code = pw.CharField(index=True, default="")
    kind = pw.CharField()  # field | status
    field = pw.CharField()
    base = pw.CharField()
    candidates = pw.TextField()  # JSON list, by version: {version, value|action, node_id, by_user, by_name, at}
    winner = pw.CharField()  # the candidate's version that the merge applied (or would apply)
    resolved = pw.IntegerField(default=0, index=True)
    resolution = pw.TextField(default="")  # JSON of the latest resolution: {choice, by_user, by_name, at, value}


class ConflictResolution(Base):
    """A person's decision on a conflict (a signed change): which candidates it settles."""

    id = pw.CharField(primary_key=True)  # "<node_id>:<seq>"
    conflict_id = pw.CharField(index=True)
    version = pw.CharField()
    covers = pw.TextField()  # JSON list of candidate versions seen and settled
    choice = pw.CharField()  # keep | take | new
    value = pw.TextField(default="")  # JSON of the value written (take/new)
    by_user = pw.CharField(default="")
    by_name = pw.TextField(default="")
    at = pw.CharField(default="")


class DuplicateFlag(Base):
    """The same citizen ID and procedure received on two nodes within the window: for review, never merged."""

    id = pw.CharField(primary_key=True)  # "<dossier id>|<dossier id>", sorted
    dossier_a = pw.CharField(index=True)
    dossier_b = pw.CharField(index=True)
    unit_code = pw.CharField(index=True, default="")
    procedure_code = pw.CharField(default="")
    reviewed = pw.IntegerField(default=0, index=True)
    decision = pw.CharField(default="")  # distinct | duplicate
    note = pw.TextField(default="")
    reviewed_by = pw.TextField(default="")
    reviewed_at = pw.CharField(default="")


class DuplicateReview(Base):
    """A person's review of a duplicate flag (a signed change); the latest by version is shown."""

    id = pw.CharField(primary_key=True)  # "<node_id>:<seq>"
    flag_id = pw.CharField(index=True)
    version = pw.CharField()
    decision = pw.CharField()
    note = pw.TextField(default="")
    by_user = pw.CharField(default="")
    by_name = pw.TextField(default="")
    at = pw.CharField(default="")


class Tombstone(Base):
    """A deleted row (never a dossier): a create arriving later stays deleted. Kept until every enrolled node
    has acknowledged it (the hub purges; see central/storage)."""

    id = pw.CharField(primary_key=True)  # "<entity>:<entity_id>"
    entity = pw.CharField()
    entity_id = pw.CharField()
    version = pw.CharField()
    node_id = pw.CharField()
    seq = pw.IntegerField()
    at = pw.CharField(default="")


SYNCED_MODELS = [NodeRecord, Procedure, CalendarDay, User, Dossier, DossierDocument, Attachment, DossierEvent,
                 DossierOrigin, FieldWrite, Conflict, ConflictResolution, DuplicateFlag, DuplicateReview, Tombstone]


def upgrade_schema(db: pw.Database, models: list[type[pw.Model]]) -> list[str]:
    """Create missing tables and indexes, and add columns a newer version declares to existing tables
    (with their defaults), on SQLite or PostgreSQL. Returns "table.column" of every column added.

    A column is added with one `ALTER TABLE ... ADD COLUMN ... DEFAULT`, which both databases do in place
    (peewee's SQLite migrator would rebuild the table to add NOT NULL, which is slow and, next to the
    full-text index, not safe)."""
    tables = set(db.get_tables())
    if "dossier" in tables and any(i.name == "dossier_code" and i.unique for i in db.get_indexes("dossier")):
        # Unique before version 4; recreated below as plain. Only then: on a hub of a million dossiers the
        # rebuild takes a while, and it must not happen at every start.
        db.execute_sql("DROP INDEX dossier_code")
    convert_calendar_days(db)  # keyed by day before per-unit calendars (a primary key cannot be added)
    tables = set(db.get_tables())
    db.create_tables([m for m in models if m._meta.table_name not in tables], safe=True)
    added = []
    for model in models:
        table = model._meta.table_name
        if table not in tables:
            continue
        have = {c.name for c in db.get_columns(table)}
        new = [f for f in model._meta.fields.values() if f.column_name not in have]
        for f in new:
            db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {_column_ddl(db, f)}')
            added.append(f"{table}.{f.column_name}")
        names = {f.column_name for f in new}
        for index in model._meta.fields_to_index():
            # Only now that the columns exist: SQLite would take an unknown quoted name for a text literal
            # and index that. An index made so by an earlier version is made again.
            if names & {getattr(e, "column_name", None) for e in index._expressions}:
                db.execute_sql(f'DROP INDEX IF EXISTS "{index._name}"')
        model._schema.create_indexes(safe=True)
    return added


def _column_ddl(db: pw.Database, f: pw.Field) -> str:
    ctx = db.get_sql_context()
    kind = ctx.sql(f.ddl_datatype(ctx)).query()[0]
    default = f.default() if callable(f.default) else f.default
    if default is None:
        if not f.null:
            raise ValueError(f"{f.model._meta.table_name}.{f.column_name}: a column added later needs a default")
        return f'"{f.column_name}" {kind}'
    literal = str(int(default)) if isinstance(default, (bool, int)) else "'" + str(default).replace("'", "''") + "'"
    return f'"{f.column_name}" {kind} NOT NULL DEFAULT {literal}'
