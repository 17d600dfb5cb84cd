// Package cluster holds the tests that need a three-node RabbitMQ
// cluster: the handler and the sink failing over while nodes stop.
//
// cluster.sh starts the cluster beside the suite's broker; the tests run
// when LOGFAN_CLUSTER names its folder:
//
//	internal/cluster/cluster.sh start /tmp/lfc
//	LOGFAN_CLUSTER=/tmp/lfc go test -race -count=1 -v ./internal/cluster
//	internal/cluster/cluster.sh stop /tmp/lfc
package cluster
