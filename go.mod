module github.com/logfan/logfan

go 1.26.8

require (
	github.com/DeRuina/timberjack v1.4.10
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/valyala/fastjson v1.6.10
	go.uber.org/goleak v1.3.0
)

require github.com/klauspost/compress v1.18.7 // indirect
