# Entry points of the project. `make demo` and `make test` are the two set-up commands.
CARGO ?= cargo
SEEDS ?= 10000

.PHONY: build release cluster stop demo test sim fault-test bench web clean

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

## Start Node_A, Node_B and Node_C in the background and wait for a leader.
cluster: release
	scripts/cluster.sh start

## Stop the nodes started by `make cluster` or `make demo`.
stop:
	scripts/cluster.sh stop

## Build, start the cluster, train, predict, kill the leader, keep working.
demo: release
	scripts/demo.sh

## Every test: unit, simulation, real-process cluster and browser tests.
test: build
	$(CARGO) test --workspace
	SIM_SEEDS=$(SEEDS) $(CARGO) test --release -p node --test sim

## The Raft simulation over more seeds: make sim SEEDS=100000
sim:
	SIM_SEEDS=$(SEEDS) $(CARGO) test --release -p node --test sim -- --nocapture

## Network faults on real processes in network namespaces (root; iproute2, python3).
fault-test: release
	scripts/fault-test.sh

## Benchmarks; scripts/bench.sh rewrites the marked sections of docs/BENCHMARKS.md.
bench: release
	scripts/bench.sh

## The web client on http://127.0.0.1:5005 against the running cluster.
web: release
	target/release/client web $(WEB_ARGS)

clean:
	scripts/cluster.sh stop
	rm -rf disk/Node_* disk/run
