#!/usr/bin/env python3
"""`weir serve --http` as a Prometheus server, a script and a browser use it: /metrics, the JSON
API and the dashboard, while a job checkpoints every second.

  * metrics: /metrics parses as OpenMetrics (prometheus-client's strict parser, PyPI, in the
    shared venv); between two scrapes records in grow and completed checkpoints grow with the
    interval; the last checkpoint's id and path are SHOW CHECKPOINTS' latest completed one; the
    pgwire connections and statements count; process figures are there.
  * api: /api/v1/jobs and /api/v1/jobs/{name}/checkpoints hold SHOW JOBS' and SHOW CHECKPOINTS'
    rows (compared column by column, moving counters between the values SHOW gave before and
    after); the job graph has a vertex per operator with a figure per subtask; a savepoint POSTed
    shows in SHOW SAVEPOINTS; bad requests get 400 / 404 / 405 with a SQLSTATE; STOP by POST.
  * restart: after a SIGKILL and a restart on the same data directory, SHOW CHECKPOINTS still
    lists the checkpoints from before, and the completed-checkpoint total goes on from there.
  * auth: a non-loopback --http address is refused without passwords; with --password-file,
    requests need HTTP Basic credentials (401 without, 200 with).
  * dashboard: Debian's chromium, headless through playwright-core (npm, into ~/.cache/weir-npm),
    loads `/`: the job list shows the running job, the checkpoint chart has points, the graph a
    box per operator; a screenshot is saved in the check's temp dir. Skipped loudly when chromium
    or playwright-core cannot be installed.

  python3 tests/verify/http_check.py [--weir PATH] [--only metrics ...]
"""

import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from weir_server import ROOT, VENV, WeirServer, check_arguments, ensure_venv, run_checks

NPM_DIR = os.path.join(os.path.expanduser("~"), ".cache", "weir-npm")
BROWSER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_dashboard.js")
CHROMIUM = "/usr/bin/chromium"

JOB_SQL = [
    "CREATE SOURCE ticks (k BIGINT, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
    "WITH (connector = 'datagen', 'rows-per-second' = '2000', 'fields.k.min' = '1', 'fields.k.max' = '500')",
    "CREATE TABLE totals (k BIGINT, n BIGINT, s BIGINT, PRIMARY KEY (k))",
    "CREATE JOB totals_job WITH ('parallelism' = '2', 'execution.checkpointing.interval' = '1s') AS "
    "INSERT INTO totals SELECT k, COUNT(*), SUM(v) FROM ticks GROUP BY k",
]


def http(port, path, method="GET", body=None, auth=None):
    """(status, parsed JSON or text, headers) of one request."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else body.encode())
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, headers = response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read().decode(), e.headers
    content_type = headers.get("Content-Type", "")
    return status, json.loads(raw) if content_type.startswith("application/json") else raw, headers


def start(weir, work, name, extra=()):
    server = WeirServer(weir, os.path.join(work, name), extra_args=["--http", "127.0.0.1:0", *extra]).start()
    if server.http_port is None:
        raise AssertionError("weir serve --http printed no HTTP address")
    return server


def start_job(server):
    for statement in JOB_SQL:
        server.sql(statement)


def wait_for(what, condition, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def completed(rows):
    """SHOW CHECKPOINTS rows (psycopg tuples: id, status, ..., path at 8) that completed."""
    return [r for r in rows if r[1] == "COMPLETED"]


def checkpoints_done(server):
    """The job's completed checkpoints, as SHOW CHECKPOINTS lists them."""
    return completed(server.sql("SHOW CHECKPOINTS FOR JOB totals_job"))


def scrape(server):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    status, text, headers = http(server.http_port, "/metrics")
    assert status == 200, (status, text)
    assert headers["Content-Type"].startswith("application/openmetrics-text"), headers["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(text):  # raises on anything malformed
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name, **labels):
    found = [v for l, v in samples.get(name, []) if all(l.get(k) == w for k, w in labels.items())]
    if len(found) != 1:
        raise AssertionError(f"{name}{labels}: {len(found)} samples: {samples.get(name)}")
    return found[0]


def check_metrics(weir, work):
    server = start(weir, work, "metrics")
    try:
        start_job(server)
        wait_for("two completed checkpoints", lambda: len(checkpoints_done(server)) >= 2)
        before_show = checkpoints_done(server)
        first = scrape(server)
        after_show = checkpoints_done(server)
        time.sleep(3.5)
        second = scrape(server)
        job = {"job": "totals_job"}
        records = [value(s, "weir_job_records_in_total", **job) for s in (first, second)]
        assert records[1] > records[0] > 0, f"records in did not grow: {records}"
        done = [value(s, "weir_job_checkpoints_total", status="completed", **job) for s in (first, second)]
        # 1 s interval, 3.5 s apart: at least 2 more (a slow machine may stretch one).
        assert done[1] >= done[0] + 2, f"completed checkpoints did not grow with the interval: {done}"
        # The info series names the latest completed checkpoint: the one SHOW CHECKPOINTS showed.
        [(info, one)] = first["weir_job_last_checkpoint_info"]
        assert one == 1.0
        shown = {str(r[0]): r[8] for r in after_show}
        assert before_show[-1][0] <= int(info["id"]) <= after_show[-1][0], (info, before_show[-1], after_show[-1])
        assert shown[info["id"]] == info["path"], f"metrics path {info['path']} != SHOW CHECKPOINTS {shown[info['id']]}"
        assert value(first, "weir_job_last_checkpoint_id", **job) == int(info["id"])
        assert value(first, "weir_job_status", status="RUNNING", **job) == 1.0
        assert value(first, "weir_job_status", status="FAILED", **job) == 0.0
        assert value(second, "weir_job_checkpoint_duration_seconds_count", **job) == done[1]
        assert value(second, "weir_pgwire_queries_total") > value(first, "weir_pgwire_queries_total") >= 3
        assert value(second, "weir_pgwire_connections_accepted_total") >= 4
        assert value(second, "process_resident_memory_bytes") > 10_000_000
        assert value(second, "process_open_fds") > 5
        # Per task: both subtasks of each stage, records moving, watermarks near the wall clock.
        tasks = [(l, v) for l, v in second["weir_task_records_in_total"] if l["job"] == "totals_job"]
        assert {l["subtask"] for l, _ in tasks} == {"0", "1"} and sum(v for _, v in tasks) > 0, tasks
        # datagen's event time starts at a fixed date: the watermark moves, its lag is whatever it is.
        watermarks = [{(l["vertex"], l["subtask"]): v for l, v in s["weir_task_watermark_seconds"] if l["job"] == "totals_job"}
                      for s in (first, second)]
        assert any(watermarks[1][t] > w for t, w in watermarks[0].items()), f"no watermark moved: {watermarks}"
        assert len(second["weir_task_watermark_lag_seconds"]) == len(second["weir_task_watermark_seconds"])
        assert "weir_task_backpressured_seconds_total" in second
        # State per operator subtask in the latest completed checkpoint: the aggregate's two.
        # (The watermark assigners' entries hold metadata only: 0 bytes.)
        state = [(l, v) for l, v in second["weir_operator_state_bytes"]
                 if l["job"] == "totals_job" and l["operator"].startswith("updating-aggregate")]
        assert {l["subtask"] for l, _ in state} == {"0", "1"} and all(v > 0 for _, v in state), state
        # Live state per task, sampled each second: the aggregate's two tasks; the sources keep none.
        live = {(l["vertex"], l["subtask"]): v for l, v in second["weir_task_state_bytes"] if l["job"] == "totals_job"}
        assert sorted(s for (vertex, s) in live if vertex.startswith("updating-aggregate")) == ["0", "1"], live
        assert len(live) == 2 and all(v > 0 for v in live.values()), live
        # Every series the Grafana board of examples/grafana reads is exported.
        with open(os.path.join(ROOT, "examples", "grafana", "weir-dashboard.json")) as f:
            board = json.load(f)
        queried = {name for panel in board["panels"] for target in panel["targets"]
                   for name in re.findall(r"\b(?:weir|process)_[a-z_]+", target["expr"])}
        missing = sorted(queried - set(second))
        assert not missing, f"the Grafana board reads series /metrics does not export: {missing}"
        return (f"{len(second)} sample names ({len(queried)} read by the Grafana board); records in {records[0]:.0f} -> {records[1]:.0f}, completed checkpoints "
                f"{done[0]:.0f} -> {done[1]:.0f}, last checkpoint {info['id']} at {info['path']}")
    finally:
        server.kill()


def check_api(weir, work):
    server = start(weir, work, "api")
    port = server.http_port
    try:
        start_job(server)
        wait_for("a completed checkpoint", lambda: checkpoints_done(server))
        with server.connect() as conn:
            cur = conn.execute("SHOW JOBS")
            columns = [d.name for d in cur.description]
            before = {r[0]: dict(zip(columns, r)) for r in cur.fetchall()}
            status, api_jobs, _ = http(port, "/api/v1/jobs")
            after = {r[0]: dict(zip(columns, r)) for r in conn.execute("SHOW JOBS").fetchall()}
        assert status == 200, api_jobs
        [api_job] = api_jobs["jobs"]
        assert sorted(api_job) == sorted(columns), (sorted(api_job), columns)
        old, new = before["totals_job"], after["totals_job"]
        for column in columns:
            got = api_job[column]
            if column in ("rows_in", "rows_out", "uptime_seconds", "rows_in_per_second", "rows_out_per_second", "last_checkpoint",
                          "window_latency_p50_ms", "window_latency_p99_ms"):
                continue  # moving: checked below
            shown = old[column]
            if isinstance(shown, datetime.datetime):
                got = datetime.datetime.fromisoformat(got)
            assert got == shown, f"{column}: API {got!r} != SHOW JOBS {shown!r}"
        for column in ("rows_in", "rows_out", "uptime_seconds"):
            assert old[column] <= api_job[column] <= new[column], (column, old[column], api_job[column], new[column])
        # The checkpoint history: every completed checkpoint SHOW knew of before is there, column by column.
        with server.connect() as conn:
            cur = conn.execute("SHOW CHECKPOINTS FOR JOB totals_job")
            job_columns, columns = columns, [d.name for d in cur.description]
            shown = [dict(zip(columns, r)) for r in cur.fetchall()]
        status, checkpoints, _ = http(port, "/api/v1/jobs/totals_job/checkpoints")
        assert status == 200, checkpoints
        by_id = {c["id"]: c for c in checkpoints["history"]}
        compared = 0
        for row in shown:
            if row["status"] != "COMPLETED":
                continue
            api_row = by_id[row["id"]]
            for column in columns:
                expected, got = row[column], api_row[column]
                if isinstance(expected, datetime.datetime):
                    got = datetime.datetime.fromisoformat(got)
                assert got == expected, f"checkpoint {row['id']} {column}: API {got!r} != SHOW {expected!r}"
            compared += 1
        assert checkpoints["counts"]["completed"] >= compared > 0
        assert checkpoints["configuration"]["interval_ms"] == 1000 and checkpoints["configuration"]["mode"] == "EXACTLY_ONCE"
        # The graph: a vertex per operator, figures per subtask.
        status, detail, _ = http(port, "/api/v1/jobs/totals_job")
        assert status == 200, detail
        kinds = [v["kind"] for v in detail["vertices"]]
        assert kinds[0] == "source" and kinds[-1] == "sink" and "updating-aggregate" in kinds, kinds
        for vertex in detail["vertices"]:
            assert len(vertex["subtasks"]) == vertex["parallelism"], vertex
        source_in = sum(t["records_in"] for t in detail["vertices"][0]["subtasks"])
        assert source_in > 0, detail["vertices"][0]
        # A savepoint by POST, then in SHOW SAVEPOINTS and the API's list.
        status, taken, _ = http(port, "/api/v1/jobs/totals_job/savepoints", method="POST", body="")
        assert status == 200, taken
        name = taken["savepoint"]["name"]
        assert name in [r[0] for r in server.sql("SHOW SAVEPOINTS")]
        status, listed, _ = http(port, "/api/v1/savepoints")
        assert name in [s["name"] for s in listed["savepoints"]], listed
        # Mistakes: status and SQLSTATE.
        for path, method, body, expected_status, code in [
            ("/api/v1/jobs/nosuch", "GET", None, 404, "42P01"),
            ("/api/v1/jobs/nosuch/checkpoints", "GET", None, 404, "42P01"),
            ("/api/v1/jobs/nosuch/stop", "POST", "", 404, "42P01"),
            ("/api/v1/jobs/totals_job/stop", "POST", "{not json", 400, "22023"),
            ("/api/v1/jobs/totals_job/stop", "POST", "{\"savepoint\": \"yes\"}", 400, "22023"),
            ("/api/v1/jobs/totals_job/stop", "GET", None, 405, "42704"),
            ("/api/v2/nothing", "GET", None, 404, "42704"),
        ]:
            status, error, _ = http(port, path, method=method, body=body)
            assert (status, error.get("code")) == (expected_status, code), (path, method, body, status, error)
        status, stopped, _ = http(port, "/api/v1/jobs/totals_job/stop", method="POST", body="{\"savepoint\": true}")
        assert status == 200 and stopped["stopped"] and stopped["savepoint"]["name"], stopped
        assert stopped["savepoint"]["name"] in [r[0] for r in server.sql("SHOW SAVEPOINTS")], stopped
        state = [r[1] for r in server.sql("SHOW JOBS") if r[0] == "totals_job"]
        assert state == ["STOPPED"], state
        return f"SHOW JOBS ({len(job_columns)} columns) and {compared} checkpoints ({len(columns)} columns) match; savepoint {name}; stop with savepoint"
    finally:
        server.kill()


def check_restart(weir, work):
    """Checkpoint history, restarts and record counts go on after the process is killed."""
    server = start(weir, work, "restart")
    try:
        start_job(server)
        wait_for("three completed checkpoints", lambda: len(checkpoints_done(server)) >= 3)
        before = checkpoints_done(server)
        counted = value(scrape(server), "weir_job_checkpoints_total", job="totals_job", status="completed")
        server.kill()
        server.start()  # the same data directory: the job resumes from its latest checkpoint
        wait_for("a checkpoint after the restart",
                 lambda: checkpoints_done(server)[-1][0] > before[-1][0])
        after = checkpoints_done(server)
        kept = {r[0]: r[8] for r in after}
        for row in before:
            assert kept.get(row[0]) == row[8], f"checkpoint {row[0]} ({row[8]}) is gone after the restart: {sorted(kept)}"
        samples = scrape(server)
        now_counted = value(samples, "weir_job_checkpoints_total", job="totals_job", status="completed")
        assert now_counted > counted >= len(before), (counted, now_counted)
        records = value(samples, "weir_job_records_in_total", job="totals_job")
        assert records > 0
        # The restore: every byte of a checkpoint the job had, on /metrics as in SHOW JOBS.
        restored = value(samples, "weir_job_restore_restored_bytes", job="totals_job")
        total = value(samples, "weir_job_restore_total_bytes", job="totals_job")
        assert restored == total > 0, (restored, total)
        assert total in {r[7] for r in after}, (total, [r[7] for r in after])
        row = next(j for j in http(server.http_port, "/api/v1/jobs")[1]["jobs"] if j["name"] == "totals_job")
        assert (row["restored_bytes"], row["restore_total_bytes"]) == (restored, total), row
        return (f"{len(before)} checkpoints before the kill kept; completed total {counted:.0f} -> {now_counted:.0f}; "
                f"records in {records:.0f}; {restored:.0f} of {total:.0f} bytes restored")
    finally:
        server.kill()


def check_auth(weir, work):
    # No credentials: a non-loopback address is refused before anything is served.
    refused = subprocess.run([weir, "serve", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--data-dir", os.path.join(work, "auth-refused")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused
    assert "refusing to serve HTTP on 0.0.0.0:0 with every client trusted" in refused.stderr, refused.stderr
    passwords = os.path.join(work, "passwords")
    with open(passwords, "w") as f:
        f.write("alice:s3cret\n")
    server = start(weir, work, "auth", extra=["--password-file", passwords])
    try:
        status, error, headers = http(server.http_port, "/api/v1/jobs")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), (status, error)
        status, _, _ = http(server.http_port, "/metrics", auth="alice:wrong")
        assert status == 401, status
        status, jobs, _ = http(server.http_port, "/api/v1/jobs", auth="alice:s3cret")
        assert status == 200 and jobs == {"jobs": []}, (status, jobs)
        return "non-loopback refused without passwords; Basic credentials required with them"
    finally:
        server.kill()


def skip_dashboard(reason, detail=""):
    print(f"*** SKIPPING dashboard check: {reason} ***" + ("\n" + detail[-2000:] if detail else ""))
    return "SKIPPED: " + reason


def apt_install(*packages):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # an old or missing package list: update once and try again
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    return done


def check_dashboard(weir, work):
    missing = [p for p, present in [("chromium", os.path.exists(CHROMIUM)), ("nodejs", shutil.which("node")), ("npm", shutil.which("npm"))] if not present]
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return skip_dashboard(f"{' '.join(missing)} not installed (apt-get install {' '.join(missing)})")
        done = apt_install(*missing)
        if done.returncode != 0 or not os.path.exists(CHROMIUM):
            return skip_dashboard(f"cannot apt-get install {' '.join(missing)}", done.stderr)
    os.makedirs(NPM_DIR, exist_ok=True)
    env = dict(os.environ, NODE_PATH=os.path.join(NPM_DIR, "node_modules"))
    probe = ["node", "-e", "require('playwright-core')"]
    if subprocess.run(probe, capture_output=True, env=env, cwd=NPM_DIR).returncode != 0:
        install = subprocess.run(["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund", "--loglevel=error", "playwright-core"],
                                 capture_output=True, text=True, env=env, cwd=NPM_DIR)
        if install.returncode != 0:
            return skip_dashboard("cannot npm install playwright-core", install.stderr)
    server = start(weir, work, "dashboard")
    try:
        start_job(server)
        wait_for("two completed checkpoints", lambda: len(checkpoints_done(server)) >= 2)
        operators = len(http(server.http_port, "/api/v1/jobs/totals_job")[1]["vertices"])
        screenshot = os.path.join(work, "dashboard.png")
        run = subprocess.run(["node", BROWSER_SCRIPT, f"http://127.0.0.1:{server.http_port}/", CHROMIUM, "totals_job", str(operators), screenshot],
                             capture_output=True, text=True, env=env, cwd=NPM_DIR, timeout=180)
        if run.returncode != 0:
            raise AssertionError("the dashboard check failed:\n" + run.stdout[-3000:] + run.stderr[-3000:])
        assert os.path.getsize(screenshot) > 10_000, "the screenshot is empty"
        # Keep the screenshot where it can be looked at (the work dir goes when every check passes).
        kept = os.path.join(tempfile.gettempdir(), "weir-dashboard.png")
        shutil.copyfile(screenshot, kept)
        return run.stdout.strip().splitlines()[-1] + f"; screenshot {kept}"
    finally:
        server.kill()


CHECKS = {"metrics": check_metrics, "api": check_api, "restart": check_restart, "auth": check_auth, "dashboard": check_dashboard}


def main():
    args = check_arguments(CHECKS)
    python = ensure_venv("HTTP", ["psycopg", "prometheus_client"], ["psycopg[binary]>=3.1", "prometheus-client"])
    if python is None:
        return 0
    # The checks import psycopg and prometheus_client: run under the venv's python.
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
    work = tempfile.mkdtemp(prefix="weir-http-")
    return run_checks("http", CHECKS, args.only or list(CHECKS), work, lambda check: check(args.weir, work))


if __name__ == "__main__":
    sys.exit(main())
