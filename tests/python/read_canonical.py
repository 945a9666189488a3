"""Reads a canonical topic the way a third-party Python service would: confluent-kafka's
Consumer with isolation.level=read_committed, and its AvroDeserializer fetching writer
schemas from the schema registry by the ID in each record's Confluent framing. Nothing
here is Switchboard code; the Rust test compares what this prints with what it wrote.

Prints one JSON document: {"records": [{"key", "partition", "offset", "schema_id",
"value"}...]}, with timestamp-millis fields as epoch milliseconds.
"""

import argparse
import datetime
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(value):
    """JSON form of what fastavro returns for logical types."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([args.topic])
    records = []
    deadline = time.monotonic() + args.timeout
    settle_until = None
    try:
        while True:
            now = time.monotonic()
            if len(records) >= args.expect and settle_until is None:
                settle_until = now + args.settle
            if now >= deadline or (settle_until is not None and now >= settle_until):
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            raw = msg.value()
            value = deserialize(raw, SerializationContext(msg.topic(), MessageField.VALUE))
            records.append(
                {
                    "key": msg.key().decode("utf-8") if msg.key() is not None else None,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "schema_id": int.from_bytes(raw[1:5], "big"),
                    "value": value,
                }
            )
    finally:
        consumer.close()
    json.dump({"records": records}, sys.stdout, default=plain)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
