"""An S3 server for the checks (DESIGN §9): moto in server mode, from PyPI into the checks' venv
(~/.cache/weir-venv), on a free loopback port, behind a TCP relay the check can take down and
bring back (moto keeps its objects in memory, so the server itself must not be restarted).

    with S3Server() as s3:
        s3.create_bucket("weir")
        env = s3.weir_env()          # AWS_* variables for a weir process
        s3.relay.stop(); ...; s3.relay.start()

`ensure_installed()` installs moto[server] (flask, flask-cors, boto3 come with it) or raises
`Unavailable`; `reexec_in_venv()` switches a script to the venv python, where boto3 imports.
"""

import os
import socket
import subprocess
import sys
import threading
import time

from weir_server import VENV

MOTO_REQUIREMENT = "moto[server]>=5.0,<6"
ACCESS_KEY = "weir-test-key"
SECRET_KEY = "weir-test-secret"
REGION = "us-east-1"


class Unavailable(Exception):
    """moto cannot be installed or run here; the message says why."""


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_installed():
    python = venv_python()
    if not os.path.exists(python):
        made = subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True, text=True)
        if made.returncode != 0:
            raise Unavailable(f"cannot create the venv {VENV} (install python3-venv): {made.stderr[-2000:]}")
    probe = [python, "-c", "import moto.server, boto3, flask, flask_cors"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        try:
            install = subprocess.run([python, "-m", "pip", "install", "--quiet", MOTO_REQUIREMENT],
                                     capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"pip did not install {MOTO_REQUIREMENT} within 600 s") from None
        if install.returncode != 0:
            raise Unavailable(f"cannot install {MOTO_REQUIREMENT} from PyPI: {install.stderr[-2000:]}")
    return python


def reexec_in_venv():
    python = ensure_installed()
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class Relay:
    """Forwards connections from its own port to the server's. `stop()` closes the listener and
    every open connection (a client then sees the S3 service as down: refused connections);
    `start()` listens on the same port again."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self._listener = None
        self._conns = []
        self._lock = threading.Lock()

    def start(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class S3Server:
    def __init__(self, log_path=None):
        self.python = ensure_installed()
        self.port = free_port()
        self.log_path = log_path or os.devnull
        self.proc = None
        self.relay = None

    def start(self):
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"moto did not start on port {self.port} (see {self.log_path})")
            time.sleep(0.1)
        self.relay = Relay(self.port)
        self.relay.start()
        return self

    @property
    def endpoint(self):
        """The endpoint Weir uses: the relay's."""
        return f"http://127.0.0.1:{self.relay.port}"

    def client(self):
        import boto3  # the venv's
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def create_bucket(self, name):
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket, prefix=""):
        client, keys, token = self.client(), [], None
        while True:
            page = client.list_objects_v2(Bucket=bucket, Prefix=prefix,
                                          **({"ContinuationToken": token} if token else {}))
            keys += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return keys

    def weir_env(self):
        """The environment of a weir process that reaches this server through AWS_* variables."""
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
        })
        return env

    def stop(self):
        if self.relay is not None:
            self.relay.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
