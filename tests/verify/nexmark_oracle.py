#!/usr/bin/env python3
"""Independent oracle for the Nexmark queries of sql/nexmark/nexmark.slt (q0-q5, q7-q9, q11-q22).

The input is a small Nexmark sequence kept in sql/data/nexmark/{person,auction,bid}.csv, dumped once
from Weir's generator (--generate). This script loads those files into SQLite and computes each
query's result with plain SQL written here from the queries' meaning (windows as integer
millisecond arithmetic), sharing no code with Weir. It prints the expected rows in
sqllogictest format; --check compares them with the .slt's blocks and also checks that the .slt
runs exactly the job statements of sql/nexmark/qN.sql.

  python3 tests/verify/nexmark_oracle.py                      # print the expected blocks
  python3 tests/verify/nexmark_oracle.py --check              # exit 1 on any difference
  python3 tests/verify/nexmark_oracle.py --generate --weir target/release/weir   # rewrite the CSVs

Semantics encoded here (Flink's, which the engine must match):
  * q0-q2: every bid; its price * 0.908 (in thousandths: 908 * price, exact); the bids of
    auctions whose id is a multiple of 123; all summarised;
  * q3: auction JOIN person ON seller = id, category 10, state OR/ID/CA;
  * q4: per auction, the highest bid with auction.date_time <= bid.date_time <= expires; per
    category the average of those, truncated to an integer (Flink's AVG over BIGINT);
  * q5: per 10 s window sliding by 2 s (starts at multiples of 2 s), the auctions whose bid count
    is the window's highest, summarised;
  * q7: per 10 s tumble of the bids, its maximum price and window_time = window end - 1 ms; the
    bids at that price with window_time - 10 s <= date_time <= window_time;
  * q8: people who registered and opened an auction in the same 10 s tumble;
  * q9: per auction, the bid placed while it was open with the highest price, the earliest of
    equal prices, the first to arrive (file order) of equal times;
  * q11: per bidder, sessions of bids at most 10 s apart (exactly 10 s merges, as Flink's
    touching windows), each from its first bid to its last + 10 s, summarised;
  * q12: per bidder, tumbles of processing time; which window a bid lands in depends on when it
    was read, so only what does not is checked: the bidders, all bids once, summed by bidder;
  * q13: each bid with the side input's value of its auction id mod 10000 (the side input does
    not change while the job runs, so the lookup join is a plain join);
  * q14: bids with 1,000,000 < 0.908 * price < 50,000,000, the hour of day's class (8-18 day, up to 6
    or from 20 night, else other) and the count of 'c' in extra, summarised per class;
  * q15-q17: per day (q16: and channel; q17: and auction), all bids and those below 10,000, below
    1,000,000 and from 1,000,000 on, counted and (q15, q16) their distinct bidders and auctions;
    q16 the latest 'HH:MM' of the day, q17 min / max / truncated average / sum of the prices;
  * q18: per (bidder, auction) the bid with the latest time, the last to arrive of equal times;
  * q19: per auction the 10 highest bids, rank 1 + the bids priced higher or equal and arrived
    earlier; q9, q18, q19 summarised (counts, sums, weighted by rank for q19) as the .slt reads them;
  * q20: bids with their auction's columns, auctions of category 10 only;
  * q21: bids of channels Apple / Google / Facebook / Baidu (any case; id 0-3) or whose URL has a
    `channel_id=` parameter (the id is its value); q22: the URL's pieces 3, 4 and 5 (from 0) split
    at '/'. Both summarised (counts, extremes, summed lengths) as the .slt reads them.
"""
import argparse
import csv
import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "sql", "data", "nexmark")
SLT = os.path.join(ROOT, "sql", "nexmark", "nexmark.slt")
EVENTS, RATE = 3000, 50

COLUMNS = {
    "person": "id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR, "
              "state VARCHAR, date_time TIMESTAMP(3), extra VARCHAR",
    "auction": "id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT, "
               "date_time TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, date_time TIMESTAMP(3), "
           "extra VARCHAR",
}
TIME_COLUMNS = {"date_time", "expires"}
INT_COLUMNS = {"id", "initial_bid", "reserve", "seller", "category", "auction", "bidder", "price"}


def generate(weir):
    """Dumps the first EVENTS events of Weir's Nexmark generator into the three CSV files."""
    os.makedirs(DATA, exist_ok=True)
    for table, columns in COLUMNS.items():
        with tempfile.TemporaryDirectory() as work:
            script = os.path.join(work, "dump.sql")
            with open(script, "w") as f:
                f.write(f"CREATE SOURCE {table} ({columns}) WITH (connector = 'nexmark', "
                        f"'nexmark.table' = '{table}', 'max.events' = '{EVENTS}', "
                        f"'events.per.second' = '{RATE}', pace = 'false');\nSELECT * FROM {table};\n")
            out = subprocess.run([weir, "run", script, "--format", "csv", "--data-dir", os.path.join(work, "data")],
                                 check=True, capture_output=True, text=True).stdout
        with open(os.path.join(DATA, f"{table}.csv"), "w") as f:
            f.write(out)
        print(f"{table}: {out.count(chr(10)) - 1} rows")


def millis(text):
    """'2023-11-14T22:13:20.040' (or without the fraction) -> milliseconds since the epoch."""
    t = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000 + 0.5) if t.microsecond else int(t.timestamp()) * 1000


def fmt_ts(ms):
    """As Weir prints a TIMESTAMP(3): no fraction for whole seconds."""
    t = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return t if ms % 1000 == 0 else f"{t}.{ms % 1000:03d}"


def load():
    db = sqlite3.connect(":memory:")
    for table in COLUMNS:
        with open(os.path.join(DATA, f"{table}.csv"), newline="") as f:
            reader = csv.DictReader(f)
            names = reader.fieldnames
            db.execute(f"CREATE TABLE {table} ({', '.join(names)})")
            rows = []
            for r in reader:
                rows.append([millis(r[n]) if n in TIME_COLUMNS else int(r[n]) if n in INT_COLUMNS else r[n]
                             for n in names])
            db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})", rows)
    # q13's side input: the file the job's lookup join reads.
    db.execute("CREATE TABLE side_input (key, value)")
    with open(os.path.join(DATA, "side_input.csv"), newline="") as f:
        db.executemany("INSERT INTO side_input VALUES (?, ?)", [(int(r["key"]), r["value"]) for r in csv.DictReader(f)])
    return db


QUERIES = {
    "nexmark_q0": ("SELECT COUNT(*), SUM(price), SUM(auction), MIN(date_time), MAX(date_time), SUM(LENGTH(extra)) FROM bid",
                   [3, 4]),
    "nexmark_q1": ("SELECT COUNT(*), SUM(908 * price) FROM bid", []),
    "nexmark_q2": ("SELECT COUNT(*), SUM(price), SUM(auction) FROM bid WHERE auction % 123 = 0", []),
    "nexmark_q11": ("SELECT COUNT(*), SUM(bid_count), MIN(starttime), MAX(endtime), SUM(bidder * bid_count) FROM q11",
                    [2, 3]),
    "nexmark_q3": ("""
        SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id
        WHERE a.category = 10 AND p.state IN ('OR', 'ID', 'CA')
        ORDER BY a.id""", []),
    "nexmark_q4": ("""
        SELECT category, CAST(AVG(final) AS INTEGER) FROM (
            SELECT a.id, a.category, MAX(b.price) AS final FROM auction a JOIN bid b
            ON a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires
            GROUP BY a.id, a.category)
        GROUP BY category ORDER BY category""", []),
    "nexmark_q5": ("""
        WITH counts AS (
            SELECT auction, s, COUNT(*) AS num
            FROM (SELECT auction, (date_time / 2000 - j) * 2000 AS s
                  FROM bid, (SELECT 0 AS j UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4))
            GROUP BY auction, s),
        most AS (SELECT s, MAX(num) AS maxn FROM counts GROUP BY s)
        SELECT COUNT(*), COUNT(DISTINCT counts.auction), SUM(counts.num), MAX(counts.num), SUM(counts.auction * counts.num)
        FROM counts JOIN most ON counts.s = most.s AND counts.num >= most.maxn""", []),
    "nexmark_q7": ("""
        WITH windows AS (
            SELECT MAX(price) AS maxprice, (date_time / 10000) * 10000 + 10000 - 1 AS window_time
            FROM bid GROUP BY date_time / 10000)
        SELECT b.auction, b.price, b.bidder, b.date_time, b.extra FROM bid b JOIN windows w
        ON b.price = w.maxprice AND b.date_time BETWEEN w.window_time - 10000 AND w.window_time
        ORDER BY b.date_time, b.auction, b.bidder""", [3]),
    "nexmark_q8": ("""
        SELECT DISTINCT p.id, p.name, (p.date_time / 10000) * 10000 AS starttime
        FROM person p JOIN auction a
        ON p.id = a.seller AND p.date_time / 10000 = a.date_time / 10000
        ORDER BY p.id, starttime""", [2]),
    # q12 windows by processing time: what does not depend on when a bid was read.
    "nexmark_q12": ("SELECT COUNT(DISTINCT bidder), COUNT(*), SUM(bidder) FROM bid", []),
    "nexmark_q13": ("""
        SELECT COUNT(*), SUM(b.price), COUNT(DISTINCT s.value), MIN(s.value), MAX(s.value)
        FROM bid b JOIN side_input s ON b.auction % 10000 = s.key""", []),
}

# q15-q17: per day (and channel or auction) counts by price rank; the day and minute as SQLite's
# strftime prints them from the epoch milliseconds (UTC).
DAY = "strftime('%Y-%m-%d', date_time / 1000, 'unixepoch')"
RANKS = ["price < 10000", "price >= 10000 AND price < 1000000", "price >= 1000000"]


def rank_counts(of):
    """The three rank columns: bids (`of` None) or distinct `of` values at each price rank."""
    if of is None:
        return ", ".join(f"SUM(CASE WHEN {r} THEN 1 ELSE 0 END)" for r in RANKS)
    return ", ".join(f"COUNT(DISTINCT CASE WHEN {r} THEN {of} END)" for r in RANKS)


RANKED = (f"COUNT(*), {rank_counts(None)}, COUNT(DISTINCT bidder), {rank_counts('bidder')}, "
          f"COUNT(DISTINCT auction), {rank_counts('auction')}")
# q21 / q22: computed here in Python (SQLite has no regular expressions), stored as tables, and
# summed by the same SQL the .slt runs over the job's table.
Q21_SUMMARY = ("SELECT COUNT(*), COUNT(DISTINCT channel_id), MIN(channel_id), MAX(channel_id), "
               "SUM(LENGTH(channel_id)), SUM(price) FROM {}")
Q22_SUMMARY = ("SELECT COUNT(*), COUNT(DISTINCT dir1), COUNT(DISTINCT dir2 || '/' || dir3), MIN(dir1), MAX(dir3), "
               "SUM(LENGTH(dir1) + LENGTH(dir2) + LENGTH(dir3)) FROM {}")
TOP_CHANNELS = {"apple": "0", "google": "1", "facebook": "2", "baidu": "3"}


def add_q14(db):
    """The rows of q14 as table `q14`, the price in thousandths (908 * price: exact)."""
    db.execute("CREATE TABLE q14 (auction, bidder, price_milli, bid_time_type, date_time, extra, c_counts)")
    for auction, bidder, price, date_time, extra in db.execute("SELECT auction, bidder, price, date_time, extra FROM bid").fetchall():
        if not 1000000 < 0.908 * price < 50000000:
            continue
        hour = date_time // 3600000 % 24
        kind = "dayTime" if 8 <= hour <= 18 else "nightTime" if hour <= 6 or hour >= 20 else "otherTime"
        db.execute("INSERT INTO q14 VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (auction, bidder, 908 * price, kind, date_time, extra, extra.count("c")))


def add_q11(db):
    """The sessions of q11 as table `q11` (bidder, bid_count, starttime, endtime)."""
    times = {}
    for bidder, t in db.execute("SELECT bidder, date_time FROM bid ORDER BY date_time").fetchall():
        times.setdefault(bidder, []).append(t)
    db.execute("CREATE TABLE q11 (bidder, bid_count, starttime, endtime)")
    for bidder, ts in times.items():
        start, last, count = ts[0], ts[0], 1
        for t in ts[1:]:
            if t - last <= 10000:
                last, count = t, count + 1
            else:
                db.execute("INSERT INTO q11 VALUES (?, ?, ?, ?)", (bidder, count, start, last + 10000))
                start, last, count = t, t, 1
        db.execute("INSERT INTO q11 VALUES (?, ?, ?, ?)", (bidder, count, start, last + 10000))


def add_q21_q22(db):
    """The rows of q21 and q22 as tables `q21` and `q22`."""
    db.execute("CREATE TABLE q21 (auction, bidder, price, channel, channel_id)")
    db.execute("CREATE TABLE q22 (auction, bidder, price, channel, dir1, dir2, dir3)")
    for auction, bidder, price, channel, url in db.execute("SELECT auction, bidder, price, channel, url FROM bid").fetchall():
        m = re.search(r"(&|^)channel_id=([^&]*)", url)
        extracted = m.group(2) if m else None
        if extracted is not None or channel.lower() in TOP_CHANNELS:
            channel_id = TOP_CHANNELS.get(channel.lower(), extracted)
            db.execute("INSERT INTO q21 VALUES (?, ?, ?, ?, ?)", (auction, bidder, price, channel, channel_id))
        parts = url.split("/") if url else []
        dirs = [parts[i] if i < len(parts) else None for i in (3, 4, 5)]
        db.execute("INSERT INTO q22 VALUES (?, ?, ?, ?, ?, ?, ?)", (auction, bidder, price, channel, *dirs))


QUERIES.update({
    # q20: bids joined to their category-10 auctions, summarised as the .slt reads them.
    "nexmark_q20": ("""
        SELECT COUNT(*), COUNT(DISTINCT a.id), SUM(b.price), SUM(a.initial_bid + a.reserve), MIN(b.date_time),
               MAX(a.expires), SUM(LENGTH(b.extra) + LENGTH(a.extra) + LENGTH(a.item_name)), MIN(b.url)
        FROM bid b JOIN auction a ON b.auction = a.id WHERE a.category = 10""", [4, 5]),
    # q9, q18, q19: ranking by correlated subqueries (arrival order = the rowid: the file's order).
    "nexmark_q9": ("""
        SELECT COUNT(*), SUM(a.initial_bid + a.reserve), SUM(b.price), SUM(b.bidder), MIN(b.date_time),
               MAX(b.date_time), SUM(LENGTH(a.item_name) + LENGTH(b.extra))
        FROM auction a JOIN bid b ON b.rowid = (
            SELECT b2.rowid FROM bid b2 WHERE b2.auction = a.id AND b2.date_time BETWEEN a.date_time AND a.expires
            ORDER BY b2.price DESC, b2.date_time, b2.rowid LIMIT 1)""", [4, 5]),
    "nexmark_q18": ("""
        SELECT COUNT(*), COUNT(DISTINCT auction), SUM(price), SUM(bidder), MIN(date_time), MAX(date_time),
               SUM(LENGTH(extra) + LENGTH(url))
        FROM bid b WHERE b.rowid = (
            SELECT b2.rowid FROM bid b2 WHERE b2.bidder = b.bidder AND b2.auction = b.auction
            ORDER BY b2.date_time DESC, b2.rowid DESC LIMIT 1)""", [4, 5]),
    "nexmark_q19": ("""
        SELECT COUNT(*), COUNT(DISTINCT auction), SUM(price), SUM(price * rank_number), SUM(bidder * rank_number),
               MAX(rank_number), MIN(date_time)
        FROM (SELECT b.*, 1 + (SELECT COUNT(*) FROM bid b2 WHERE b2.auction = b.auction
                               AND (b2.price > b.price OR (b2.price = b.price AND b2.rowid < b.rowid))) AS rank_number
              FROM bid b)
        WHERE rank_number <= 10""", [6]),
    "nexmark_q14": ("""
        SELECT bid_time_type, COUNT(*), SUM(c_counts), SUM(price_milli), MIN(date_time), SUM(auction)
        FROM q14 GROUP BY bid_time_type ORDER BY 1""", [4]),
    "nexmark_q21": (Q21_SUMMARY.format("q21"), []),
    "nexmark_q22": (Q22_SUMMARY.format("q22"), []),
    "nexmark_q15": (f"SELECT {DAY} AS day, {RANKED} FROM bid GROUP BY day", []),
    # The .slt sums q16's rows (one per channel) and reads the earliest and latest day + minute.
    "nexmark_q16": (f"""
        SELECT COUNT(*), {", ".join(f"SUM(c{i})" for i in range(12))}, MIN(day || ' ' || minute), MAX(day || ' ' || minute)
        FROM (SELECT channel, {DAY} AS day,
                     MAX(strftime('%H:%M', date_time / 1000, 'unixepoch')) AS minute,
                     {", ".join(f"{c} AS c{i}" for i, c in enumerate(RANKED.split(", ")))}
              FROM bid GROUP BY channel, day)""", []),
    "nexmark_q17": (f"""
        SELECT auction, {DAY} AS day, COUNT(*), {rank_counts(None)}, MIN(price), MAX(price),
               CAST(AVG(price) AS INTEGER), SUM(price)
        FROM bid GROUP BY auction, day ORDER BY auction""", []),
})


def expected():
    """{table: expected lines} as the .slt prints them."""
    db = load()
    add_q11(db)
    add_q14(db)
    add_q21_q22(db)
    blocks = {}
    for table, (sql, time_columns) in QUERIES.items():
        lines = []
        for row in db.execute(sql):
            cells = [fmt_ts(v) if i in time_columns else str(v) for i, v in enumerate(row)]
            lines.append(" ".join(cells))
        blocks[table] = lines
    return blocks


def slt_blocks(text, tables=r"nexmark_q\d+"):
    """{table: the expected lines of the first query in `text` that selects FROM it}, for the
    tables whose names match the regex `tables`."""
    blocks = {}
    for m in re.finditer(r"^query [^\n]*\n(.*?)\n----\n(.*?)(?:\n\n|\Z)", text, re.S | re.M):
        t = re.search(rf"FROM ({tables})", m.group(1))
        if t and t.group(1) not in blocks:
            blocks[t.group(1)] = m.group(2).strip("\n").split("\n")
    return blocks


def job_statement(text, name):
    """The CREATE JOB statement of job `name` in `text`, whitespace-normalised."""
    m = re.search(rf"CREATE JOB {name} AS.*?(?:;|\n\n|\Z)", text, re.S)
    return " ".join(m.group(0).rstrip(";").split()) if m else None


def check():
    slt = open(SLT).read()
    blocks = slt_blocks(slt)
    bad = 0
    for table, lines in expected().items():
        query = table.split("_")[1]
        with open(os.path.join(ROOT, "sql", "nexmark", f"{query}.sql")) as f:
            published = job_statement(f.read(), table)
        if published is None or job_statement(slt, table) != published:
            print(f"{table}: the .slt does not run the job statement of sql/nexmark/{query}.sql")
            bad += 1
        got = blocks.get(table)
        if got is None:
            print(f"{table}: no query over {table} in {os.path.relpath(SLT, ROOT)}")
            bad += 1
        elif got != lines:
            print(f"{table}: MISMATCH\n  oracle: {lines}\n  slt:    {got}")
            bad += 1
        else:
            print(f"{table}: ok ({len(lines)} rows)")
    return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--weir", default=os.path.join(ROOT, "target", "release", "weir"))
    args = parser.parse_args()
    if args.generate:
        generate(args.weir)
        return
    if args.check:
        sys.exit(1 if check() else 0)
    for table, lines in expected().items():
        print(f"# {table} ({len(lines)} rows)")
        print("\n".join(lines))
        print()


if __name__ == "__main__":
    main()
