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
    """A day that differs from the default week: a day off on a weekday, or a working Saturday/Sunday."""

    day = pw.CharField(primary_key=True)  # YYYY-MM-DD
    kind = pw.CharField()  # day_off | working_day | normal (a withdrawn override)
    name = pw.TextField(default="")


class User(Base):
    id = pw.CharField(primary_key=True)
    username = pw.CharField()
    full_name = pw.TextField()
    roles = pw.CharField()  # comma separated: reception, specialist, leader, admin
    password_hash = pw.TextField()
    active = pw.IntegerField(default=1)
    unit_code = pw.CharField(default="")
    phone = pw.CharField(default="")

    class Meta:
        # Usernames are unique within a unit: two communes may both have "admin" and meet at the hub.
        indexes = ((("unit_code", "username"), True),)


class Dossier(Base):
    id = pw.CharField(primary_key=True)
    code = pw.CharField(unique=True)
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
    updated_hlc = pw.CharField(default="")

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


SYNCED_MODELS = [NodeRecord, Procedure, CalendarDay, User, Dossier, DossierDocument, Attachment, DossierEvent]
