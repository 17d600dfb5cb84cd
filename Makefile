# One-word entry points; each is the command the README gives.
.PHONY: test faults bench ci

test:
	go test -race ./...

faults:
	LOGFAN_BROKER_FAULTS=1 go test -race -count=1 -p 1 -v ./internal/faults

bench:
	go test -run '^$$' -bench Handle -benchmem -count 10 ./slogamqp
	go run ./cmd/logbench -duration 5s

ci:
	CI=true bash .ci/run
