"""Fault scenarios against three real nodes; started by scripts/fault-test.sh as root.

Each scenario injects one fault, waits on conditions with deadlines, and records its
measurements. Every acknowledged upload and model is checked on all nodes at the end.
Exits 1 when any check failed.
"""

import argparse
import os
import random
import subprocess
import sys
import threading
import time
import traceback

from cluster import (
    NODE_IDS,
    Cluster,
    RequestFailed,
    directory_digests,
    send_request,
    sha256_hex,
    submit,
    train_request,
    upload_request,
    wait_for,
)

# A leader checks its quorum every election_tick_min ticks (150 ms with the node defaults).
# A cut made just after one check is noticed at the end of the next period, so an isolated
# leader steps down after at most about 300 ms. The rest is margin for polling and load.
STEP_DOWN_LIMIT_S = 1.0
# With pre-vote, a node cut off from the leader cannot raise its term while the node it
# still reaches hears from the leader, so the expected growth during a one-link partition
# is 0. The bound allows one unexpected election, which takes two terms when its first
# vote splits. Without pre-vote the cut-off node would start an election every 150-300 ms,
# so a 3 s partition would add about 10 to 20 terms.
MAX_TERM_GROWTH = 2
# How long the partitions of scenarios b and c last, in seconds.
PARTITION_S = float(os.environ.get("FAULT_PARTITION_S", "3"))
# Upper bound on the uploads sent during one partition.
MAX_PARTITION_WRITES = 100
ELECTION_TIMEOUT_S = 10.0
CATCH_UP_TIMEOUT_S = 20.0
UPLOAD_ATTEMPT_S = 5.0
MODEL_ID = "fault-model"
# Enough epochs on the 10,000-row `large` dataset that training runs for seconds, so the
# leader can be killed in the middle of it. Validation 0 turns early stopping off.
TRAIN_OPTIONS = {"epochs": 600, "validation": 0.0, "seed": 7}



def is_running(pid):
    """Return whether a process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"

class ScenarioFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise ScenarioFailed(message)


def small_csv(name):
    """Build a valid two-feature CSV whose rows depend on `name`, so every upload differs."""
    rng = random.Random(name)
    rows = ["x1,x2,label"]
    for i in range(12):
        rows.append(f"{rng.uniform(-1, 1):.5f},{rng.uniform(-1, 1):.5f},{i % 2}")
    return ("\n".join(rows) + "\n").encode()


class FaultTest:
    def __init__(self, cluster):
        self.cluster = cluster
        self.acknowledged = {}  # dataset name -> SHA-256 of the uploaded bytes
        self.models = {}  # model id -> first successful TRAIN_REQUEST response
        self.results = []  # (scenario, passed, measurements or error)
        self.findings = []
        self.lock = threading.Lock()
        self.sequence = 0
        self.run_tag = f"{os.getpid()}"

    # Helpers

    def leader(self, among=None, timeout=ELECTION_TIMEOUT_S, not_node=None):
        """Wait for a leader agreed on by a majority (optionally other than `not_node`)."""

        def agreed():
            position = self.cluster.agreed_leader(among)
            return position if position is not None and position != not_node else None

        return wait_for("a leader agreed on by a majority", timeout, agreed)

    def upload(self, targets, timeout=30.0):
        """Upload one new dataset until it is acknowledged; return (name, seconds taken)."""
        with self.lock:
            self.sequence += 1
            number = self.sequence
        name = f"fault-{number:04d}.csv"
        content = small_csv(f"{self.run_tag}-{name}")
        request = upload_request(name, content, f"upload-{self.run_tag}-{number}")
        started = time.monotonic()
        response, _ = submit(request, targets, started + timeout, UPLOAD_ATTEMPT_S)
        check(response.get("sha256") == sha256_hex(content), f"{name}: acknowledged sha256 {response.get('sha256')} differs from the upload")
        with self.lock:
            self.acknowledged[name] = sha256_hex(content)
        return name, time.monotonic() - started

    def wait_caught_up(self, position, leader, timeout=CATCH_UP_TIMEOUT_S):
        """Wait until `position` follows `leader` in the leader's term and has applied its whole log."""
        leader_id = NODE_IDS[leader]

        def caught_up():
            mine, theirs = self.cluster.raft(position), self.cluster.raft(leader)
            if not mine or not theirs:
                return None
            return (
                mine["role"] == "follower"
                and mine["leader"] == leader_id
                and mine["term"] == theirs["term"]
                and mine["lastLogIndex"] == theirs["lastLogIndex"]
                and mine["appliedIndex"] >= theirs["commitIndex"]
            ) or None

        _, seconds = wait_for(f"{NODE_IDS[position]} to catch up with {leader_id}", timeout, caught_up)
        return seconds

    def restore(self):
        """Heal every cut and restart stopped nodes, so a failed scenario does not spoil the next."""
        self.cluster.heal_all()
        for position in range(3):
            if not self.cluster.is_running(position):
                self.cluster.start(position)

    def run(self, name, scenario):
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            measurements = scenario()
            measurements["time"] = f"{time.monotonic() - started:.1f}s"
            self.results.append((name, True, measurements))
            print(f"   PASS {measurements}", flush=True)
        except (ScenarioFailed, TimeoutError, RequestFailed) as error:
            self.results.append((name, False, {"error": str(error)}))
            print(f"   FAIL {error}", flush=True)
            self.restore()
        except Exception as error:  # A bug here, or a node status without an expected field.
            traceback.print_exc()
            self.results.append((name, False, {"error": f"{type(error).__name__}: {error}"}))
            print(f"   FAIL {type(error).__name__}: {error}", flush=True)
            self.restore()

    # Scenarios

    def first_election(self):
        leader, seconds = self.leader(timeout=30.0)
        return {"leader": NODE_IDS[leader], "elected": f"{seconds:.2f}s"}

    def isolated_leader(self):
        """(a) The leader loses every link: the others elect a new leader, the old one steps down."""
        cluster = self.cluster
        old, _ = self.leader()
        old_term = cluster.raft(old)["term"]
        for _ in range(3):
            self.upload(lambda: [old])

        majority = [i for i in range(3) if i != old]
        stale = {}

        def write_to_old_leader():
            # Sent to the cut-off leader, which must not acknowledge it. The cut lasts until
            # this request has failed or timed out.
            request = upload_request("fault-stale.csv", small_csv("stale"), f"stale-{self.run_tag}")
            try:
                stale["response"] = send_request(old, request, timeout=4.0)
            except RequestFailed as error:
                stale["code"] = error.code or "no response"

        cut_at = time.monotonic()
        cluster.isolate(old)
        probe = threading.Thread(target=write_to_old_leader)
        probe.start()

        # Watch both events at once, so each time is measured from the cut.
        seen = {}

        def step_down_and_election():
            raft = cluster.raft(old)
            if "step_down" not in seen and raft is not None and raft["role"] != "leader":
                seen["step_down"] = time.monotonic() - cut_at
            if "elected" not in seen:
                position = cluster.agreed_leader(majority)
                if position is not None:
                    seen["elected"] = time.monotonic() - cut_at
                    seen["new"] = position
            return len(seen) == 3 or None

        wait_for(f"{NODE_IDS[old]} to step down and the others to elect a leader", ELECTION_TIMEOUT_S, step_down_and_election)
        new = seen["new"]
        new_term = cluster.raft(new)["term"]
        majority_uploads = [self.upload(lambda: [new] + [i for i in majority if i != new])[0] for _ in range(5)]
        old_view = cluster.raft(old)
        probe.join(timeout=10)
        check(not probe.is_alive(), "the upload sent to the isolated old leader outlived its 4 s timeout")

        cluster.heal_all()
        rejoin_s = self.wait_caught_up(old, new)

        old_datasets = directory_digests(os.path.join(cluster.node_dir(old), "datasets"))
        lost = [name for name in majority_uploads if old_datasets.get(name) != self.acknowledged[name]]
        check(not lost, f"after rejoining, {NODE_IDS[old]} lacks uploads acknowledged by the majority: {lost}")
        step_down_s = seen["step_down"]

        check(step_down_s <= STEP_DOWN_LIMIT_S, f"old leader took {step_down_s:.2f} s to step down (limit {STEP_DOWN_LIMIT_S} s)")
        check(old_view["role"] != "leader", f"old leader was {old_view['role']} again while isolated")
        check("response" not in stale, f"the isolated old leader acknowledged an upload: {stale.get('response')}")
        return {
            "old": NODE_IDS[old],
            "new": NODE_IDS[new],
            "step_down": f"{step_down_s:.2f}s",
            "elected": f"{seen['elected']:.2f}s",
            "write_to_old": stale.get("code"),
            "term": f"{old_term}->{new_term}",
            "rejoin": f"{rejoin_s:.2f}s",
        }

    def one_link_partition(self):
        """(b) Only the link between the leader and one follower is cut: writes keep committing."""
        cluster = self.cluster
        leader, _ = self.leader()
        cut_off = (leader + 1) % 3
        bridge = 3 - leader - cut_off
        terms_before = cluster.terms()

        cluster.cut(leader, cut_off)
        started = time.monotonic()
        writes, slowest = 0, 0.0
        while time.monotonic() - started < PARTITION_S:
            if writes == MAX_PARTITION_WRITES:
                time.sleep(0.05)
                continue
            # Alternate between the leader and the follower in the middle, which forwards.
            targets = [leader, bridge] if writes % 2 == 0 else [bridge, leader]
            _, seconds = self.upload(lambda: targets, timeout=10.0)
            writes += 1
            slowest = max(slowest, seconds)
        terms_during = cluster.terms()
        leader_during = cluster.agreed_leader()
        cluster.heal_all()
        catch_up_s = self.wait_caught_up(cut_off, leader)
        terms_after = cluster.terms()

        growth = max(terms_after) - max(terms_before)
        check(writes >= 5, f"only {writes} uploads were acknowledged in {PARTITION_S} s of partition")
        check(growth <= MAX_TERM_GROWTH, f"term grew by {growth} (limit {MAX_TERM_GROWTH}): {terms_before} -> {terms_after}")
        return {
            "leader": NODE_IDS[leader],
            "cut": f"{NODE_IDS[leader]}-{NODE_IDS[cut_off]}",
            "writes": writes,
            "slowest_write": f"{slowest:.2f}s",
            "terms": f"{terms_before}->{terms_during}->{terms_after}",
            "leader_kept": leader_during == leader,
            "catch_up": f"{catch_up_s:.2f}s",
        }

    def isolated_follower(self):
        """(c) A follower is cut off while writes go on. On return it catches up and the leader stays."""
        cluster = self.cluster
        leader, _ = self.leader()
        follower = (leader + 2) % 3
        term = cluster.raft(leader)["term"]

        cluster.isolate(follower)
        started = time.monotonic()
        writes = 0
        while time.monotonic() - started < PARTITION_S:
            if writes == MAX_PARTITION_WRITES:
                time.sleep(0.05)
                continue
            self.upload(lambda: [leader], timeout=10.0)
            writes += 1
        isolated_term = cluster.raft(follower)["term"]
        cluster.heal_all()
        catch_up_s = self.wait_caught_up(follower, leader)

        # Watch for one second that the leader and every term stay as they were.
        watch_until = time.monotonic() + 1.0
        while time.monotonic() < watch_until:
            views = [cluster.raft(i) for i in range(3)]
            for position, view in enumerate(views):
                check(view is not None, f"{NODE_IDS[position]} stopped responding after the heal")
                check(view["term"] == term, f"{NODE_IDS[position]} is in term {view['term']}, was {term} before the cut")
                check(view["leader"] == NODE_IDS[leader], f"{NODE_IDS[position]} follows {view['leader']}, not {NODE_IDS[leader]}")
            time.sleep(0.05)
        check(writes >= 5, f"only {writes} uploads were acknowledged while {NODE_IDS[follower]} was cut off")
        return {
            "follower": NODE_IDS[follower],
            "writes": writes,
            "term": f"{term} (isolated node: {isolated_term})",
            "catch_up": f"{catch_up_s:.2f}s",
        }

    def kill_during_uploads(self):
        """(d) SIGKILL of the leader while two writers upload; it restarts and catches up."""
        cluster = self.cluster
        leader, _ = self.leader()
        hint = {"leader": leader}
        acknowledged_at = []
        errors = []
        stop = threading.Event()
        deadline = time.monotonic() + 60.0

        def targets():
            first = hint["leader"]
            return [first] + [i for i in range(3) if i != first]

        def writer():
            for _ in range(60):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    self.upload(targets, timeout=30.0)
                except (ScenarioFailed, TimeoutError, RequestFailed) as error:
                    errors.append(str(error))
                    return
                with self.lock:
                    acknowledged_at.append(time.monotonic())

        def acknowledged_since(moment, count):
            with self.lock:
                return sum(1 for t in acknowledged_at if t > moment) >= count or None

        writers = [threading.Thread(target=writer) for _ in range(2)]
        for thread in writers:
            thread.start()
        try:
            wait_for("10 uploads before the kill", 20.0, lambda: acknowledged_since(0, 10))
            killed_at = time.monotonic()
            cluster.kill(leader)
            survivors = [i for i in range(3) if i != leader]
            new, _ = self.leader(among=survivors, not_node=leader)
            failover_s = time.monotonic() - killed_at
            hint["leader"] = new
            wait_for("10 uploads after the kill", 30.0, lambda: acknowledged_since(killed_at, 10))

            restarted_at = time.monotonic()
            cluster.start(leader)
            wait_for("10 uploads after the restart", 30.0, lambda: acknowledged_since(restarted_at, 10))
        finally:
            stop.set()
            for thread in writers:
                thread.join(timeout=40)
        check(not errors, f"writers failed: {errors}")
        catch_up_s = self.wait_caught_up(leader, new)

        times = sorted(acknowledged_at)
        stall = max(b - a for a, b in zip(times, times[1:]))
        return {
            "killed": NODE_IDS[leader],
            "new": NODE_IDS[new],
            "acknowledged": len(times),
            "failover": f"{failover_s:.2f}s",
            "longest_gap": f"{stall:.2f}s",
            "restart_catch_up": f"{catch_up_s:.2f}s",
        }

    def kill_during_training(self, csv):
        """(e) SIGKILL of the leader while it trains; the same request_id is retried elsewhere."""
        cluster = self.cluster
        leader, _ = self.leader()
        request = train_request(MODEL_ID, csv, f"train-{self.run_tag}", TRAIN_OPTIONS)
        first = {}

        def first_attempt():
            try:
                first["response"] = send_request(leader, request, timeout=300.0)
            except RequestFailed as error:
                first["error"] = str(error)

        attempt = threading.Thread(target=first_attempt)
        attempt.start()
        trainers, _ = wait_for(
            f"ai-core train to start on {NODE_IDS[leader]}", 60.0, lambda: cluster.ai_core_processes(leader, "train") or None
        )
        # Let it train a little, so the kill lands in the middle of the run.
        time.sleep(0.3)
        check(attempt.is_alive(), f"training finished before the kill; raise the epochs: {first}")
        cluster.kill(leader)
        killed_at = time.monotonic()
        attempt.join(timeout=30)
        check("response" not in first, f"the killed leader acknowledged the training: {first.get('response')}")

        # The node's ai-core child should die with its node; note it if it lives on.
        # A killed child stays a zombie until it is reaped, so zombies do not count.
        time.sleep(0.2)
        orphans = [pid for pid in trainers if is_running(pid)]
        if orphans:
            self.findings.append(
                f"ai-core train (pid {orphans}) kept running after its node {NODE_IDS[leader]} was killed with SIGKILL"
            )

        survivors = [i for i in range(3) if i != leader]
        response, answered_by = submit(request, lambda: survivors, time.monotonic() + 180.0, 180.0)
        retry_s = time.monotonic() - killed_at
        self.models[MODEL_ID] = response
        for pid in orphans:
            if is_running(pid):
                os.kill(pid, 9)

        cluster.start(leader)
        new, _ = self.leader(not_node=None)
        catch_up_s = self.wait_caught_up(leader, new) if leader != new else 0.0

        again = send_request(leader, request, timeout=60.0)
        check(
            again.get("logIndex") == response.get("logIndex"),
            f"a second retry answered logIndex {again.get('logIndex')}, the first {response.get('logIndex')}: trained twice",
        )
        for position in range(3):
            listed = send_request(position, {"type": "LIST_MODELS", "payload": {}}, timeout=10.0)["models"]
            count = sum(1 for model in listed if model["id"] == MODEL_ID)
            check(count == 1, f"{NODE_IDS[position]} lists {MODEL_ID} {count} times")
            leftovers = temporary_files(cluster.node_dir(position))
            check(not leftovers, f"{NODE_IDS[position]} holds temporary files {leftovers} after the training retry")
            names = [n for n in os.listdir(os.path.join(cluster.node_dir(position), "models")) if MODEL_ID in n]
            check(
                sorted(names) == [f"{MODEL_ID}.json", f"{MODEL_ID}.model"],
                f"{NODE_IDS[position]} models/ holds {sorted(names)} for {MODEL_ID}",
            )
        return {
            "killed": NODE_IDS[leader],
            "retried_on": NODE_IDS[answered_by],
            "first_attempt": "failed" if "error" in first else "no result",
            "retry_to_success": f"{retry_s:.1f}s",
            "training": f"{response.get('duration', 0) / 1000:.1f}s",
            "orphaned_trainer": bool(orphans),
            "catch_up": f"{catch_up_s:.2f}s",
        }

    def final_check(self):
        """Check that every acknowledged upload and model is on every node and that the nodes' files are identical."""
        cluster = self.cluster
        leader, _ = self.leader()
        for position in range(3):
            if position != leader:
                self.wait_caught_up(position, leader)

        listings = {}
        for position in range(3):
            node_dir = cluster.node_dir(position)
            listings[position] = {sub: directory_digests(os.path.join(node_dir, sub)) for sub in ("datasets", "models")}
            leftovers = temporary_files(node_dir)
            check(not leftovers, f"{NODE_IDS[position]} holds temporary files {leftovers}")
            datasets = listings[position]["datasets"]
            missing = [name for name, digest in self.acknowledged.items() if datasets.get(name) != digest]
            check(not missing, f"{NODE_IDS[position]} lacks or altered acknowledged uploads {missing}")
            for model in self.models:
                check(f"{model}.model" in listings[position]["models"], f"{NODE_IDS[position]} lacks model {model}")
        for position in (1, 2):
            for sub in ("datasets", "models"):
                theirs, reference = listings[position][sub], listings[0][sub]
                differing = sorted(n for n in set(theirs) | set(reference) if theirs.get(n) != reference.get(n))
                check(not differing, f"{sub}/ of {NODE_IDS[position]} differs from {NODE_IDS[0]}'s in {differing}")
        return {
            "uploads": len(self.acknowledged),
            "models": len(self.models),
            "files_per_node": sum(len(files) for files in listings[0].values()),
        }


def temporary_files(root):
    """List the files under `root` whose name contains ".tmp", as a file written half way would."""
    found = []
    for directory, _, files in os.walk(root):
        found += [os.path.relpath(os.path.join(directory, name), root) for name in files if ".tmp" in name]
    return found


def generate_large(bin_dir, work):
    output = subprocess.run(
        [os.path.join(bin_dir, "ai-core"), "generate", "large", "--out", work],
        check=True,
        capture_output=True,
        text=True,
    )
    with open(output.stdout.strip(), "rb") as file:
        return file.read()


def print_summary(results, findings):
    print("\n| scenario | result | measurements |")
    print("|---|---|---|")
    for name, passed, measurements in results:
        details = ", ".join(f"{key}={value}" for key, value in measurements.items())
        print(f"| {name} | {'PASS' if passed else 'FAIL'} | {details} |")
    for finding in findings:
        print(f"NOTE: {finding}")


def print_log_tails(cluster, lines=40):
    for position in range(3):
        print(f"\n----- {NODE_IDS[position]} log (last {lines} lines) -----")
        try:
            with open(cluster.log_path(position), errors="replace") as file:
                print("".join(file.readlines()[-lines:]), end="")
        except OSError as error:
            print(f"(no log: {error})")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--router", required=True)
    parser.add_argument("--namespaces", required=True, help="three node namespaces, comma-separated")
    args = parser.parse_args()

    cluster = Cluster(args.bin_dir, args.work, args.router, args.namespaces.split(","))
    test = FaultTest(cluster)
    started = time.monotonic()
    try:
        csv = generate_large(args.bin_dir, args.work)
        for position in range(3):
            cluster.start(position)
        test.run("start", test.first_election)
        test.run("a isolated leader", test.isolated_leader)
        test.run("b one-link partition", test.one_link_partition)
        test.run("c isolated follower", test.isolated_follower)
        test.run("d kill -9 during uploads", test.kill_during_uploads)
        test.run("e kill -9 during training", lambda: test.kill_during_training(csv))
        test.run("final: all nodes identical", test.final_check)
    finally:
        cluster.heal_all()
        cluster.stop_all()

    print_summary(test.results, test.findings)
    failed = [name for name, passed, _ in test.results if not passed]
    print(f"\ntotal {time.monotonic() - started:.0f} s; {len(failed)} of {len(test.results)} scenarios failed")
    if failed:
        print_log_tails(cluster)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
