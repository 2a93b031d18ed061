"""Node processes, network cuts and the client side of the fault test.

Runs inside the router namespace that scripts/fault-test.sh creates, so every node
address 10.213.N.2 is reachable whatever links between nodes are cut.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

NODE_IDS = ["Node_A", "Node_B", "Node_C"]
CLIENT_PORT = 5000
PEER_PORT = 6000
HTTP_PORT = 8080
RETRYABLE_CODES = {"NOT_LEADER", "UNAVAILABLE", "TIMEOUT"}


def node_address(position):
    return f"10.213.{position + 1}.2"


def members_spec():
    return ",".join(
        f"{node_id}={node_address(i)}:{CLIENT_PORT}:{PEER_PORT}:{HTTP_PORT}" for i, node_id in enumerate(NODE_IDS)
    )


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


class RequestFailed(Exception):
    """A request that got no success response: a network error, a timeout or `success: false`."""

    def __init__(self, message, code=None, response=None):
        super().__init__(message)
        self.code = code
        self.response = response

    @property
    def retryable(self):
        # No response at all (code None) means the outcome is unknown, so the same
        # request_id is sent again; the cluster applies it once.
        return self.code is None or self.code in RETRYABLE_CODES


def send_request(position, request, timeout):
    """Send one JSON request line to a node's client port and return the response object."""
    address = (node_address(position), CLIENT_PORT)
    try:
        with socket.create_connection(address, timeout=min(timeout, 2.0)) as connection:
            connection.settimeout(timeout)
            connection.sendall((json.dumps(request) + "\n").encode())
            reader = connection.makefile("rb")
            line = reader.readline()
    except OSError as error:
        raise RequestFailed(f"{NODE_IDS[position]}: {error!r}") from error
    if not line:
        raise RequestFailed(f"{NODE_IDS[position]} closed the connection without a response")
    try:
        response = json.loads(line)
    except ValueError as error:
        raise RequestFailed(f"{NODE_IDS[position]} sent a response that is not JSON: {line[:200]!r}") from error
    if response.get("success") is not True:
        raise RequestFailed(
            f"{NODE_IDS[position]}: {response.get('error')} ({response.get('code')})",
            code=response.get("code"),
            response=response,
        )
    return response


def upload_request(name, content, request_id):
    payload = {"name": name, "data_content": base64.b64encode(content).decode()}
    return {"type": "UPLOAD_DATASET", "payload": payload, "request_id": request_id}


def train_request(model, content, request_id, options):
    payload = {"model_name": model, "data_content": base64.b64encode(content).decode(), **options}
    return {"type": "TRAIN_REQUEST", "payload": payload, "request_id": request_id}


class Cluster:
    """Three node processes, one per network namespace, and the router where links are cut."""

    def __init__(self, bin_dir, work, router, namespaces):
        self.bin_dir = bin_dir
        self.work = work
        self.router = router
        self.namespaces = namespaces
        self.data_root = os.path.join(work, "disk")
        self.processes = [None, None, None]
        self.cuts = set()

    # Processes

    def log_path(self, position):
        return os.path.join(self.work, f"{NODE_IDS[position]}.log")

    def node_dir(self, position):
        return os.path.join(self.data_root, NODE_IDS[position])

    def start(self, position):
        assert self.processes[position] is None, f"{NODE_IDS[position]} is already running"
        command = [
            "ip", "netns", "exec", self.namespaces[position],
            os.path.join(self.bin_dir, "node"),
            "--id", NODE_IDS[position],
            "--cluster", members_spec(),
            "--data-root", self.data_root,
            "--ai-core", os.path.join(self.bin_dir, "ai-core"),
        ]  # fmt: skip
        with open(self.log_path(position), "ab") as log:
            # `ip netns exec` replaces itself with the node, so this PID is the node's.
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.processes[position] = process

    def kill(self, position):
        """Send SIGKILL to one node, as a crash would, and reap it."""
        process = self.processes[position]
        assert process is not None, f"{NODE_IDS[position]} is not running"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.processes[position] = None

    def is_running(self, position):
        return self.processes[position] is not None

    def stop_all(self):
        for position in range(3):
            if self.processes[position] is not None:
                self.kill(position)

    def ai_core_processes(self, position, subcommand):
        """Find the PIDs of `ai-core SUBCOMMAND` processes working in this node's data directory."""
        marker = self.node_dir(position) + os.sep
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    argv = file.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            is_ai_core = os.path.basename(argv[0]) == "ai-core"
            if is_ai_core and len(argv) > 1 and argv[1] == subcommand and any(marker in arg for arg in argv):
                found.append(int(entry))
        return found

    # Network

    def _rules(self, action, a, b):
        # Priorities keep one rule per direction and pair so `rule del` finds exactly it.
        for source, target in ((a, b), (b, a)):
            priority = 100 + source * 10 + target
            command = ["ip", "rule", action, "from", node_address(source), "to", node_address(target), "blackhole"]
            command += ["priority", str(priority)]
            subprocess.run(command, check=True)

    def cut(self, a, b):
        """Drop every packet between nodes a and b, both ways, without an error to either side."""
        key = (min(a, b), max(a, b))
        if key not in self.cuts:
            self._rules("add", *key)
            self.cuts.add(key)

    def heal(self, a, b):
        key = (min(a, b), max(a, b))
        if key in self.cuts:
            self._rules("del", *key)
            self.cuts.discard(key)

    def isolate(self, position):
        for other in range(3):
            if other != position:
                self.cut(position, other)

    def heal_all(self):
        for a, b in list(self.cuts):
            self.heal(a, b)

    # Monitor

    def status(self, position, timeout=1.0):
        """Fetch the node's /api/status document; return None when the node does not respond."""
        if not self.is_running(position):
            return None
        url = f"http://{node_address(position)}:{HTTP_PORT}/api/status"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return json.load(response)
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def raft(self, position):
        status = self.status(position)
        return status["raft"] if status else None

    def agreed_leader(self, among=None):
        """Find the leader that a majority of the nodes in `among` reports; return its position or None.

        The leader must itself report role "leader" in the same term as its supporters.
        """
        among = list(range(3)) if among is None else among
        views = {i: self.raft(i) for i in among}
        for candidate in among:
            view = views[candidate]
            if not view or view["role"] != "leader":
                continue
            supporters = [
                i for i in among
                if views[i] and views[i]["leader"] == NODE_IDS[candidate] and views[i]["term"] == view["term"]
            ]  # fmt: skip
            if len(supporters) >= 2:
                return candidate
        return None

    def terms(self):
        return [(raft or {}).get("term") for raft in (self.raft(i) for i in range(3))]


def wait_for(description, timeout, condition, interval=0.05):
    """Poll `condition` until it returns a value other than None or False.

    Return (value, seconds waited). Raise TimeoutError with `description` after `timeout` seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value, time.monotonic() - started
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {description}")
        time.sleep(interval)


def submit(request, targets, deadline, attempt_timeout):
    """Send a write until it succeeds, trying the nodes `targets()` returns in order, with one request_id.

    Return (response, position of the node that sent it). Raise RequestFailed on a
    non-retryable error and TimeoutError when `deadline` (a time.monotonic() value) passes.
    """
    last_error = None
    while time.monotonic() < deadline:
        for position in targets():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return send_request(position, request, min(attempt_timeout, remaining)), position
            except RequestFailed as error:
                if not error.retryable:
                    raise
                last_error = error
        time.sleep(0.1)
    raise TimeoutError(f"request {request.get('request_id')} not acknowledged before its deadline; last error: {last_error}")


def directory_digests(path):
    """Map every file name in `path`, hidden ones included, to its SHA-256."""
    digests = {}
    if not os.path.isdir(path):
        return digests
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as file:
                digests[name] = sha256_hex(file.read())
    return digests
