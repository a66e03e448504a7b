"""Seed corpora for the cargo-fuzz targets (fuzz/fuzz_targets): every statement and query of the
sqllogictest files for `statement`, and client sessions in the Postgres wire protocol for
`pgwire_frames`. Also the catalog the `statement` target plans against: the sqllogictest files'
CREATE SOURCE and CREATE TABLE statements, the first of each name, blocks separated by a line
holding `;`. Usage: python3 scripts/fuzz_seeds.py FUZZ_DIR (writes FUZZ_DIR/corpus/<target>/ and
FUZZ_DIR/catalog.sql)."""
import hashlib
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def slt_statements(only_ok=False):
    for path in sorted((ROOT / "sql").rglob("*.slt")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith(("statement ok",) if only_ok else ("statement ", "query ")):
                sql = []
                i += 1
                while i < len(lines) and lines[i].strip() and lines[i] != "----":
                    sql.append(lines[i])
                    i += 1
                if sql:
                    yield "\n".join(sql)
            i += 1


def message(tag, body):
    return tag + struct.pack(">I", len(body) + 4) + body


def cstr(text):
    return text.encode() + b"\0"


def startup(**params):
    body = struct.pack(">I", 196608) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\0"
    return struct.pack(">I", len(body) + 4) + body


def wire_sessions():
    hello = startup(user="weir", database="weir", application_name="psql")
    query = lambda sql: message(b"Q", cstr(sql))
    parse = lambda name, sql, types=(): message(
        b"P", cstr(name) + cstr(sql) + struct.pack(">h", len(types)) + b"".join(struct.pack(">i", t) for t in types)
    )

    def bind(portal, statement, params, formats=(), results=()):
        body = cstr(portal) + cstr(statement) + struct.pack(">h", len(formats))
        body += b"".join(struct.pack(">h", f) for f in formats) + struct.pack(">h", len(params))
        for p in params:
            body += struct.pack(">i", -1) if p is None else struct.pack(">i", len(p)) + p
        return body + struct.pack(">h", len(results)) + b"".join(struct.pack(">h", f) for f in results)

    execute = message(b"E", cstr("") + struct.pack(">i", 0))
    sync, flush, terminate = message(b"S", b""), message(b"H", b""), message(b"X", b"")
    yield hello + query("SELECT 1") + terminate
    yield hello + query("SHOW JOBS; SELECT * FROM weir_jobs") + terminate
    yield (
        hello
        + parse("", "SELECT $1::BIGINT + 1", (20,))
        + message(b"B", bind("", "", [b"41"]))
        + message(b"D", b"P\0")
        + execute
        + sync
        + terminate
    )
    yield (
        hello
        + parse("s1", "SELECT $1, $2", (25, 0))
        + message(b"D", b"Ss1\0")
        + message(b"B", bind("p", "s1", [b"a", None], (0, 1), (1,)))
        + message(b"E", cstr("p") + struct.pack(">i", 10))
        + flush
        + message(b"C", b"Ss1\0")
        + sync
    )
    yield hello + message(b"d", b"1,2\n") + message(b"c", b"") + message(b"f", cstr("gave up"))
    yield hello + message(b"p", cstr("secret"))
    yield struct.pack(">IIII", 16, 80877102, 1234, 5678)


def write(corpus, target, items):
    directory = corpus / target
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def catalog():
    created, blocks = set(), []
    for sql in slt_statements(only_ok=True):
        words = sql.split()
        if [w.upper() for w in words[:2]] in (["CREATE", "SOURCE"], ["CREATE", "TABLE"]) and len(words) > 2:
            name = words[2].split("(")[0].lower()
            if name not in created:
                created.add(name)
                blocks.append(sql)
    return "\n;\n".join(blocks)


if __name__ == "__main__":
    fuzz = pathlib.Path(sys.argv[1])
    write(fuzz / "corpus", "statement", slt_statements())
    write(fuzz / "corpus", "pgwire_frames", wire_sessions())
    (fuzz / "catalog.sql").write_text(catalog())
