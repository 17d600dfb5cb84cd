package amqpconn_test

import (
	"testing"

	"github.com/logfan/logfan/internal/brokertest"
)

func TestMain(m *testing.M) {
	brokertest.Main(m, nil)
}
