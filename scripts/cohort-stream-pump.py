#!/usr/bin/env python3
"""Local stand-in for Lambda's DynamoDB event source mapping of the cohort-jobs function.

AWS delivers the cohorts table's stream to CohortJobsFunction (template.yaml: FilterCriteria
`is_calculating = true`, BatchSize 10, retries). DynamoDB Local has the stream but nothing reads
it, so this pump polls it (DescribeStream, GetShardIterator, GetRecords, following new shards),
keeps the records whose NewImage has `is_calculating = true`, wraps them in Lambda's DynamoDB
event shape and invokes the worker through the local API server's stand-in for Lambda's Invoke API
(`POST /2015-03-31/functions/cohort-jobs/invocations`, synchronous).

Like the event source mapping, a shard's batches go to the worker one at a time, in order, and a
failed invocation is retried (a few times, with backoff) before the batch is skipped; the worker
is idempotent, and a job left idle is re-kicked when its cohort is read.

Shards are read from TRIM_HORIZON: replaying old records is harmless (the worker reads each
cohort's current state and finds finished ones idle), and nothing written before the pump
started is missed.

Usage: cohort-stream-pump.py --dynamodb http://127.0.0.1:8000 --table <prefix>cohorts \
           --invoke http://127.0.0.1:9000 [--function cohort-jobs] [--interval 0.25]
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

BATCH_SIZE = 10
MAX_ATTEMPTS = 10


def log(message):
    print(f"cohort-stream-pump: {message}", file=sys.stderr, flush=True)


def clients(endpoint):
    kwargs = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 3}),
    )
    return boto3.client("dynamodb", **kwargs), boto3.client("dynamodbstreams", **kwargs)


def stream_arn(dynamodb, table):
    """The table's stream, or None while the table does not exist yet."""
    try:
        return dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
    except dynamodb.exceptions.ResourceNotFoundException:
        return None


def shard_ids(streams, arn):
    ids, start = [], None
    while True:
        kwargs = {"StreamArn": arn}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        ids.extend(s["ShardId"] for s in description.get("Shards", []))
        start = description.get("LastEvaluatedShardId")
        if not start:
            return ids


def wanted(record):
    image = record.get("dynamodb", {}).get("NewImage", {})
    return image.get("is_calculating", {}).get("BOOL") is True


def lambda_record(record, arn):
    """What Lambda hands a function for one stream record."""
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": record["dynamodb"].get("Keys", {}),
            "NewImage": record["dynamodb"].get("NewImage", {}),
            "SequenceNumber": record["dynamodb"].get("SequenceNumber"),
            "SizeBytes": record["dynamodb"].get("SizeBytes"),
            "StreamViewType": record["dynamodb"].get("StreamViewType"),
        },
        "eventSourceARN": arn,
    }


def invoke(url, event):
    body = json.dumps(event, default=str).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json"}
    )
    # The worker's step is bounded (~20 s).
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = response.read()
        if response.headers.get("X-Amz-Function-Error"):
            raise RuntimeError(f"function error: {answer[:500]!r}")


def deliver(url, event):
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            invoke(url, event)
            return
        except (OSError, RuntimeError, urllib.error.URLError) as e:
            log(f"invoke failed (attempt {attempt}/{MAX_ATTEMPTS}): {e}")
            time.sleep(min(0.5 * 2**attempt, 10))
    log("giving up on a batch; reading its cohort re-kicks the job later")


def pump(args):
    dynamodb, streams = clients(args.dynamodb)
    url = f"{args.invoke.rstrip('/')}/2015-03-31/functions/{args.function}/invocations"
    iterators = {}  # shard id -> iterator (None once the shard is closed and drained)
    arn = None
    while True:
        if arn is None:
            arn = stream_arn(dynamodb, args.table)
            if arn is None:
                time.sleep(args.interval)
                continue
            log(f"reading {arn}")
        for shard in shard_ids(streams, arn):
            if shard not in iterators:
                iterators[shard] = streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        busy = False
        for shard, iterator in list(iterators.items()):
            if iterator is None:
                continue
            try:
                out = streams.get_records(ShardIterator=iterator, Limit=1000)
            except (
                streams.exceptions.ExpiredIteratorException,
                # DynamoDB Local's answer for a TRIM_HORIZON iterator taken while the shard
                # was still empty.
                streams.exceptions.TrimmedDataAccessException,
            ):
                iterators.pop(shard)  # re-opened from TRIM_HORIZON next round
                continue
            iterators[shard] = out.get("NextShardIterator")
            records = [lambda_record(r, arn) for r in out.get("Records", []) if wanted(r)]
            for start in range(0, len(records), BATCH_SIZE):
                busy = True
                deliver(url, {"Records": records[start : start + BATCH_SIZE]})
        if not busy:
            time.sleep(args.interval)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dynamodb", required=True, help="DynamoDB Local endpoint URL")
    parser.add_argument("--table", required=True, help="the cohorts table's name")
    parser.add_argument("--invoke", required=True, help="the local API server's base URL")
    parser.add_argument("--function", default="cohort-jobs")
    parser.add_argument("--interval", type=float, default=0.25, help="idle poll pause, seconds")
    args = parser.parse_args()
    while True:
        try:
            pump(args)
        except KeyboardInterrupt:
            return
        except Exception as e:  # noqa: BLE001 - a pump that dies would stall every fill
            log(f"restarting after {type(e).__name__}: {e}")
            time.sleep(1)


if __name__ == "__main__":
    main()
