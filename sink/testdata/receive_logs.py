# receive_logs.py from RabbitMQ's publish/subscribe tutorial, unchanged but
# for the broker's address, which the test passes in, and flushing prints.
import pika
import sys

connection = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
channel = connection.channel()

# declare an fanout exchange
channel.exchange_declare(exchange="logs", exchange_type="fanout")
# declare queue
result = channel.queue_declare(queue="", exclusive=True)
queue_name = result.method.queue
# bind the queue to logs exchange
channel.queue_bind(exchange="logs", queue=queue_name)

print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)


def callback(ch, method, properties, body):
    print(" [x] %r" % body, flush=True)

# bind consumer to queue
channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
channel.start_consuming()
