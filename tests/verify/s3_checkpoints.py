#!/usr/bin/env python3
"""Checkpoints and savepoints on S3 (issue 15, DESIGN §9) against a real S3 server: moto in server
mode from PyPI (s3_server.py), reached by Weir through AWS_* environment variables and a relay
the check can take down.

  python3 tests/verify/s3_checkpoints.py --weir target/release/weir [--only NAME]

- recovery: recovery.py's SIGKILL check with 'execution.checkpointing.dir' = 's3://...' and local
  recovery: exact results, and a restart on the same machine downloads nothing.
- corrupt: the newest checkpoint's object is damaged in the bucket: the restart says it skips that
  checkpoint, and the results stay exact.
- savepoint: STOP JOB WITH SAVEPOINT to S3, then RESTORE at parallelism 3 in a fresh data directory
  from the same S3 prefix: the two result tables together are exactly the failure-free result, and
  SHOW JOBS shows the savepoint's size restored.
- outage: the S3 service goes away for 3 s while the job checkpoints: those checkpoints fail and
  are tolerated, later ones complete, and the results stay exact.
- resume: Weir restarts (after SIGKILL) while S3 is down. It comes up and lists the job, which
  cannot restore and retries; once S3 is back the job restores, SHOW JOBS shows every byte of the
  checkpoint restored, and the results are exact.
- errors: a bad S3 URL, missing credentials and a missing bucket are refused at CREATE JOB.

Needs the venv (moto[server], boto3, psycopg); skips loudly when they cannot be installed.
"""
import glob
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recovery  # noqa: E402
import s3_server  # noqa: E402
from psycopg_check import ensure_psycopg  # noqa: E402
from weir_server import WeirServer, check_arguments, run_checks  # noqa: E402

BUCKET = "weir-checkpoints"
ROWS, KEYS = 60_000, 10


class Failure(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def job_sql(data_path, seconds, parallelism, job_options):
    """The recovery check's source, table and 1 s TUMBLE job, the source paced over `seconds`."""
    rate = max(1, round(ROWS / seconds))
    options = ", ".join(f"'{k}' = '{v}'" for k, v in {"parallelism": parallelism, **job_options}.items())
    return [
        "CREATE SOURCE events (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
        f"WITH (connector = 'file', path = '{data_path}', format = 'csv', 'rows-per-second' = '{rate}')",
        "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, "
        "PRIMARY KEY (k, window_start))",
        f"CREATE JOB j WITH ({options}) AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v) "
        "FROM TUMBLE(events, ts, INTERVAL '1' SECOND) GROUP BY k, window_start, window_end",
    ]


def result(weir):
    rows = weir.sql("SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT), cnt, total FROM t")
    return {(k, ws): (cnt, total) for k, ws, cnt, total in rows}


def wait_finished(weir, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = weir.sql("SELECT status, error FROM weir_jobs WHERE name = 'j'")
        if rows and rows[0][0] in ("FINISHED", "FAILED", "CANCELED"):
            if rows[0][0] != "FINISHED":
                raise Failure(f"job j ended {rows[0][0]}: {rows[0][1]}")
            return
        time.sleep(0.2)
    raise Failure(f"job j did not finish within {timeout_s} s: {weir.sql('SELECT status, error FROM weir_jobs')}")


def compare(expected, got, what):
    missing = [k for k in expected if k not in got]
    wrong = [k for k in expected if k in got and tuple(got[k]) != tuple(expected[k])]
    extra = [k for k in got if k not in expected]
    if missing or wrong or extra:
        raise Failure(f"{what}: {len(missing)} missing {missing[:3]}, {len(wrong)} wrong "
                      f"{[(k, got[k], expected[k]) for k in wrong[:3]]}, {len(extra)} unexpected {extra[:3]}")


def data(work, name):
    path = os.path.join(work, f"{name}.csv")
    return path, recovery.generate(path, ROWS, KEYS, seed=len(name))


def run_recovery(weir_binary, work, name, argv, corrupt=None):
    workdir = os.path.join(work, name)
    args = ["--weir", weir_binary, "--workdir", workdir, *argv]
    code = recovery.main(args) if corrupt is None else recovery.main(args, corrupt_latest=corrupt)
    if code != 0:
        raise Failure(f"recovery.py {' '.join(argv)} failed (outputs in {workdir})")
    return workdir


def check_recovery(weir_binary, work, s3):
    prefix = "recovery"
    workdir = run_recovery(weir_binary, work, "recovery",
                           ["--kills", "3", "--checkpoint-dir", f"s3://{BUCKET}/{prefix}", "--local-recovery"])
    restores = []
    for path in sorted(glob.glob(os.path.join(workdir, "run*-B.stderr"))):
        restores += re.findall(r"checkpoint (\d+) of s3://\S+: downloading (\d+) of its (\d+) bytes", open(path).read())
    if not restores:
        raise Failure("no restart restored a checkpoint from S3 (no 'downloading ... bytes' line in the logs)")
    local = [r for r in restores if r[1] == "0" and int(r[2]) > 0]
    if not local:
        raise Failure(f"local recovery: every restore downloaded files: {restores}")
    if os.path.exists(os.path.join(workdir, "data", "checkpoints", "j")):
        raise Failure("checkpoints were written to the data directory, not to S3")
    return f"3 SIGKILLs exact; {len(restores)} restores from S3, {len(local)} of them downloading 0 bytes (local recovery)"


def check_corrupt(weir_binary, work, s3):
    prefix = "corrupt"

    def damage_newest(_data_dir):
        keys = s3.keys(BUCKET, f"{prefix}/j/")
        ids = sorted({int(m.group(1)) for k in keys if (m := re.search(r"/chk-(\d+)/_metadata$", k))}, reverse=True)
        if len(ids) < 2:
            raise recovery.Failure(f"complete checkpoints on S3 {ids}: two are needed, one to damage and one to fall back to")
        own = [k for k in keys if f"/chk-{ids[0]}/" in k and not k.endswith("_metadata")]
        target = own[0] if own else f"{prefix}/j/chk-{ids[0]}/_metadata"
        client = s3.client()
        body = bytearray(client.get_object(Bucket=BUCKET, Key=target)["Body"].read())
        body[len(body) // 2] ^= 0x55
        client.put_object(Bucket=BUCKET, Key=target, Body=bytes(body))
        log(f"damaged s3://{BUCKET}/{target}")
        return ids[0]

    run_recovery(weir_binary, work, "corrupt",
                 ["--kills", "2", "--seed", "7", "--corrupt-latest", "--checkpoint-dir", f"s3://{BUCKET}/{prefix}"],
                 corrupt=damage_newest)
    return "a damaged object of the newest checkpoint on S3 is skipped (and said), results exact"


def check_savepoint(weir_binary, work, s3):
    data_path, expected = data(work, "savepoint")
    first = WeirServer(weir_binary, os.path.join(work, "savepoint-a"), [work]).start()
    try:
        for statement in job_sql(data_path, 6, 2, {"execution.checkpointing.interval": "300ms",
                                                  "execution.checkpointing.dir": f"s3://{BUCKET}/sp-checkpoints"}):
            first.sql(statement)
        time.sleep(2.5)
        with first.connect() as conn:  # SET holds for its session
            conn.execute(f"SET 'execution.checkpointing.savepoint-dir' = 's3://{BUCKET}/savepoints'")
            saved = conn.execute("STOP JOB j WITH SAVEPOINT").fetchall()
        path, size = saved[0][1], int(saved[0][2])
        if not path.startswith(f"s3://{BUCKET}/savepoints/"):
            raise Failure(f"the savepoint is at {path}, not on S3")
        before = result(first)
    finally:
        first.kill()
    if not any(k.endswith("/_metadata") for k in s3.keys(BUCKET, "savepoints/")):
        raise Failure("no _metadata of the savepoint in the bucket")
    # A fresh data directory (another machine, as far as Weir can tell) on the same bucket.
    second = WeirServer(weir_binary, os.path.join(work, "savepoint-b"), [work]).start()
    try:
        for statement in job_sql(data_path, 6, 2, {})[:2]:
            second.sql(statement)
        second.sql(f"RESTORE JOB j FROM '{path}' WITH ('parallelism' = '3', 'execution.checkpointing.interval' = '300ms', "
                   f"'execution.checkpointing.dir' = 's3://{BUCKET}/sp-checkpoints-b')")
        wait_finished(second)
        after = result(second)
        restore = second.sql("SELECT restored_bytes, restore_total_bytes FROM weir_jobs WHERE name = 'j'")
    finally:
        second.kill()
    if restore != [(size, size)]:
        raise Failure(f"SHOW JOBS restored / total bytes {restore}; the savepoint's size is {size}")
    both = dict(before)
    for key, value in after.items():
        if key in both and both[key] != value:
            raise Failure(f"window {key}: {both[key]} before the savepoint, {value} after the restore")
        both[key] = value
    compare(expected, both, "savepoint on S3 and restore at parallelism 3 in a fresh data dir")
    return (f"{len(before)} windows before STOP WITH SAVEPOINT ({path}, {size} bytes), {len(after)} after RESTORE 2 -> 3 "
            f"in a fresh data dir: together exactly the {len(expected)} expected; {size} of {size} bytes restored")


def check_outage(weir_binary, work, s3):
    data_path, expected = data(work, "outage")
    weir = WeirServer(weir_binary, os.path.join(work, "outage"), [work]).start()
    try:
        for statement in job_sql(data_path, 10, 2, {
                "execution.checkpointing.interval": "300ms",
                "execution.checkpointing.dir": f"s3://{BUCKET}/outage",
                "execution.checkpointing.timeout": "5s",
                "execution.checkpointing.tolerable-failed-checkpoints": "1000"}):
            weir.sql(statement)
        time.sleep(2)
        s3.relay.stop()
        log("S3 is down")
        time.sleep(3)
        s3.relay.start()
        log("S3 is back")
        wait_finished(weir)
        checkpoints = weir.sql("SHOW CHECKPOINTS FOR JOB j")
        statuses = [row[1] for row in checkpoints]
        failed = [i for i, s in enumerate(statuses) if s == "FAILED"]
        if not failed:
            raise Failure(f"no checkpoint failed while S3 was down: {statuses}")
        if "COMPLETED" not in statuses[failed[-1]:]:
            raise Failure(f"no checkpoint completed after S3 came back: {statuses}")
        compare(expected, result(weir), "S3 down for 3 s during checkpoints")
        return f"{len(failed)} checkpoints failed while S3 was down, then {statuses[failed[-1]:].count('COMPLETED')} completed; results exact"
    finally:
        weir.kill()


def check_resume(weir_binary, work, s3):
    data_path, expected = data(work, "resume")
    data_dir = os.path.join(work, "resume")
    first = WeirServer(weir_binary, data_dir, [work]).start()
    try:
        for statement in job_sql(data_path, 10, 2, {
                "execution.checkpointing.interval": "300ms",
                "execution.checkpointing.dir": f"s3://{BUCKET}/resume",
                "restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": "1000",
                "restart-strategy.fixed-delay.delay": "200ms"}):
            first.sql(statement)
        deadline = time.monotonic() + 60
        while sum(1 for row in first.sql("SHOW CHECKPOINTS FOR JOB j") if row[1] == "COMPLETED") < 2:
            if time.monotonic() > deadline:
                raise Failure("no 2 checkpoints completed on S3 within 60 s")
            time.sleep(0.1)
    finally:
        first.kill()
    s3.relay.stop()
    log("S3 is down; restarting Weir")
    second = WeirServer(weir_binary, data_dir, [work])
    try:
        try:
            second.start()  # must come up while the job cannot restore
            # Each S3 request is retried for about 3 s before a restore attempt fails over.
            seen = set()
            deadline = time.monotonic() + 30
            while not seen & {"RESTARTING", "FAILING"}:
                status, error = second.sql("SELECT status, error FROM weir_jobs WHERE name = 'j'")[0]
                seen.add(status)
                if status in ("RUNNING", "FINISHED", "FAILED"):
                    raise Failure(f"job j is {status} while S3 is down ({error})")
                if time.monotonic() > deadline:
                    raise Failure(f"the restore did not fail over within 30 s of S3 down: statuses {sorted(seen)}")
                time.sleep(0.05)
            restarts, error = second.sql("SELECT restarts, error FROM weir_jobs WHERE name = 'j'")[0]
        finally:
            s3.relay.start()
        log("S3 is back")
        wait_finished(second)
        restore = second.sql("SELECT restored_bytes, restore_total_bytes FROM weir_jobs WHERE name = 'j'")[0]
        compare(expected, result(second), "Weir restarted while S3 was down")
    finally:
        second.kill()
    if restore[0] is None or restore[0] != restore[1] or restore[0] == 0:
        raise Failure(f"SHOW JOBS restored / total bytes after the restore: {restore}")
    return (f"Weir came up with S3 down; job j was {'/'.join(sorted(seen))} ({restarts} restarts, error: {str(error)[:80]}) until S3 came back; "
            f"then {restore[0]} of {restore[1]} bytes restored, results exact")


def check_errors(weir_binary, work, s3):
    import psycopg
    data_path, _ = data(work, "errors")
    cases = [
        ("s3://Bad_Bucket/x", {}, "names no valid bucket"),
        (f"s3://{BUCKET}-missing/x", {}, "cannot reach"),
        (f"s3://{BUCKET}/x", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "needs S3 credentials"),
    ]
    saved = dict(os.environ)
    seen = []
    try:
        for n, (url, env, wanted) in enumerate(cases):
            os.environ.clear()
            os.environ.update({k: v for k, v in {**saved, **env}.items() if v is not None})
            weir = WeirServer(weir_binary, os.path.join(work, f"errors-{n}"), [work]).start()
            try:
                statements = job_sql(data_path, 5, 1, {"execution.checkpointing.interval": "1s",
                                                       "execution.checkpointing.dir": url})
                for statement in statements[:2]:
                    weir.sql(statement)
                try:
                    weir.sql(statements[2])
                    raise Failure(f"CREATE JOB with checkpoints at {url} was accepted")
                except psycopg.Error as e:
                    if wanted not in str(e):
                        raise Failure(f"CREATE JOB with checkpoints at {url}: the error does not say '{wanted}': {e}")
                    seen.append(wanted)
                if weir.sql("SELECT name FROM weir_jobs WHERE name = 'j'"):
                    raise Failure(f"a refused CREATE JOB ({url}) left job j in the catalog")
            finally:
                weir.kill()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return "refused at CREATE JOB: " + "; ".join(seen)


CHECKS = {
    "recovery": check_recovery,
    "corrupt": check_corrupt,
    "savepoint": check_savepoint,
    "outage": check_outage,
    "resume": check_resume,
    "errors": check_errors,
}


def main():
    args = check_arguments(CHECKS)
    if ensure_psycopg() is None:
        print("*** SKIPPING S3 checks: psycopg cannot be installed ***")
        return 0
    try:
        s3_server.reexec_in_venv()
    except s3_server.Unavailable as e:
        print(f"*** SKIPPING S3 checks: {e} ***")
        return 0
    weir_binary = os.path.abspath(args.weir)
    work = tempfile.mkdtemp(prefix="weir-s3-")
    with s3_server.S3Server(os.path.join(work, "moto.log")) as s3:
        s3.create_bucket(BUCKET)
        os.environ.update(s3.weir_env())
        os.environ["WEIR_LOG"] = "warn,weir::checkpoint=info"
        return run_checks("s3 checkpoints", CHECKS, args.only or list(CHECKS), work,
                          lambda check: check(weir_binary, work, s3))


if __name__ == "__main__":
    sys.exit(main())
