"""SQLAlchemy 2 (over psycopg 3) as an application uses it against Tempora:
metadata.create_all inside a transaction, ORM inserts and queries, Core
inserts with parameters, table reflection (names; columns through
information_schema, as Inspector.get_columns' query is not answered yet), a
rolled-back session, a migration-style block (ALTER TABLE + data) that fails
and leaves nothing behind, ORM updates and deletes, and errors with their
SQLSTATE.

Usage: python3 sqlalchemy_workflow.py PORT   (password from PGPASSWORD)
"""
import datetime
import os
import sys

import psycopg
import sqlalchemy as sa
from sqlalchemy import orm

UTC = datetime.timezone.utc


class Base(orm.DeclarativeBase):
    pass


class Device(Base):
    __tablename__ = "devices"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(40), unique=True)
    site: orm.Mapped[str | None] = orm.mapped_column(sa.Text)


class Reading(Base):
    __tablename__ = "readings"
    time: orm.Mapped[datetime.datetime] = orm.mapped_column(
        sa.DateTime(timezone=True), primary_key=True
    )
    device_id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    value: orm.Mapped[float | None] = orm.mapped_column(sa.Float)


def columns(engine: sa.Engine, table: str) -> list[tuple[str, str, str]]:
    """The table's columns as information_schema lists them."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                    "WHERE table_name = :t ORDER BY ordinal_position"
                ),
                {"t": table},
            )
        ]


def main(port: int) -> None:
    url = sa.engine.URL.create(
        "postgresql+psycopg",
        username="postgres",
        password=os.environ.get("PGPASSWORD"),
        host="127.0.0.1",
        port=port,
        database="postgres",
    )
    engine = sa.create_engine(url)

    # create_all runs in one transaction: BEGIN, lookups, CREATE TABLE x2, COMMIT.
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT create_hypertable('readings', 'time')"))

    insp = sa.inspect(engine)
    assert {"devices", "readings"} <= set(insp.get_table_names()), insp.get_table_names()
    assert insp.has_table("devices") and not insp.has_table("nope")
    assert columns(engine, "devices") == [
        ("id", "integer", "NO"),
        ("name", "character varying", "NO"),
        ("site", "text", "YES"),
    ], columns(engine, "devices")
    # SQLAlchemy's own column reflection (correlated catalog subqueries).
    reflected = {c["name"]: c for c in insp.get_columns("devices")}
    assert list(reflected) == ["id", "name", "site"], list(reflected)
    assert isinstance(reflected["id"]["type"], sa.Integer), reflected["id"]
    assert reflected["id"]["autoincrement"], reflected["id"]
    assert reflected["id"]["default"] == "nextval('devices_id_seq'::regclass)", reflected["id"]
    assert isinstance(reflected["name"]["type"], sa.String), reflected["name"]
    assert reflected["name"]["type"].length == 40, reflected["name"]
    assert not reflected["name"]["nullable"] and reflected["site"]["nullable"], reflected
    assert reflected["site"]["default"] is None, reflected["site"]
    # Keys, unique constraints and whole-table reflection.
    pk = insp.get_pk_constraint("devices")
    assert pk["constrained_columns"] == ["id"], pk
    uniques = insp.get_unique_constraints("devices")
    assert [u["column_names"] for u in uniques] == [["name"]], uniques
    indexes = insp.get_indexes("devices")
    assert [(i["column_names"], i["unique"]) for i in indexes] == [(["name"], True)], indexes
    loaded = sa.Table("devices", sa.MetaData(), autoload_with=engine)
    assert loaded.c.keys() == ["id", "name", "site"], loaded.c.keys()
    assert [c.name for c in loaded.primary_key] == ["id"], loaded.primary_key
    assert isinstance(loaded.c.name.type, sa.String) and loaded.c.name.type.length == 40

    # ORM: inserts (the serial id comes back), a query with a filter.
    t0 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    with orm.Session(engine) as session:
        # New rows whose ids come back go as one INSERT ... SELECT FROM
        # (VALUES ...) ORDER BY ... RETURNING.
        a = Device(name="a", site="north")
        b = Device(name="b")
        session.add_all([a, b])
        session.flush()
        assert (a.id, b.id) == (1, 2), (a.id, b.id)
        session.add_all(
            [Reading(time=t0 + datetime.timedelta(minutes=i), device_id=a.id, value=float(i))
             for i in range(5)]
        )
        session.commit()
    with orm.Session(engine) as session:
        names = session.scalars(sa.select(Device.name).order_by(Device.id)).all()
        assert names == ["a", "b"], names
        total = session.scalar(
            sa.select(sa.func.sum(Reading.value)).where(Reading.device_id == 1)
        )
        assert total == 10.0, total
        newest = session.scalars(
            sa.select(Reading).order_by(Reading.time.desc()).limit(1)
        ).one()
        assert newest.time == t0 + datetime.timedelta(minutes=4), newest.time
        assert newest.time.tzinfo is not None

    # A session rolled back leaves nothing.
    with orm.Session(engine) as session:
        session.add(Device(name="ghost"))
        session.flush()
        session.rollback()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM devices")) == 2

    # Core insert with parameters, time_bucket through text().
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Reading.__table__),
            [{"time": t0 + datetime.timedelta(hours=1, minutes=i), "device_id": 2, "value": 1.0}
             for i in range(3)],
        )
        rows = conn.execute(
            sa.text(
                "SELECT time_bucket('1 hour', time) AS b, count(*) FROM readings "
                "GROUP BY b ORDER BY b"
            )
        ).all()
        assert [(r.b, r.count) for r in rows] == [
            (t0, 5),
            (t0 + datetime.timedelta(hours=1), 3),
        ], rows

    # A migration: ALTER TABLE and a data fix in one block; the fix fails,
    # so the new column is gone too.
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE devices ADD COLUMN kind text"))
            conn.execute(sa.text("INSERT INTO devices (id, name) VALUES (1, 'dup')"))
        raise AssertionError("duplicate key was accepted")
    except sa.exc.IntegrityError as e:
        assert isinstance(e.orig, psycopg.errors.UniqueViolation), e.orig
    assert [c[0] for c in columns(engine, "devices")] == ["id", "name", "site"]

    # The same migration, committed.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE devices ADD COLUMN kind text DEFAULT 'sensor'"))
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind FROM devices ORDER BY id")).scalars().all()
        assert kinds == ["sensor", "sensor"], kinds

    # ORM changes and deletes: UPDATE and DELETE inside the session's transaction.
    with orm.Session(engine) as session:
        session.get(Device, 2).site = "south"
        session.delete(session.get(Device, 1))
        session.commit()
    with orm.Session(engine) as session:
        left = session.execute(sa.select(Device.id, Device.site)).all()
        assert [tuple(r) for r in left] == [(2, "south")], left
    # Rolled back, they leave nothing.
    with orm.Session(engine) as session:
        session.delete(session.get(Device, 2))
        session.flush()
        session.rollback()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM devices")) == 1
    # A row changed in the transaction that inserted it.
    with orm.Session(engine) as session:
        c = Device(name="c")
        session.add(c)
        session.flush()
        c.site = "east"
        session.commit()
    with orm.Session(engine) as session:
        rows = session.execute(sa.select(Device.id, Device.site).order_by(Device.id)).all()
        # 3 went to the rolled-back "ghost": sequences do not roll back.
        assert [tuple(r) for r in rows] == [(2, "south"), (4, "east")], rows

    # Errors keep their SQLSTATE through SQLAlchemy.
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))
        raise AssertionError("missing table was accepted")
    except sa.exc.ProgrammingError as e:
        assert e.orig.sqlstate == "42P01", e.orig.sqlstate

    Base.metadata.drop_all(engine)
    assert "devices" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    print("sqlalchemy workflow ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
