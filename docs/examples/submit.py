#!/usr/bin/env python3
"""Submit a build to a Slipway coordinator from Python, authenticated with CURVE.

    pip install pyzmq protobuf
    protoc -I proto --python_out=. proto/slipway/v1/*.proto      # from the Slipway repository
    python3 submit.py tcp://127.0.0.1:7700 ci-github.secret coordinator-main.cert REPO COMMIT ARTIFACT

Your key file is a `slipway keys new --role ci` secret file; its certificate must
be in the coordinator's trust folder. Prints the job id, or the coordinator's error.
"""
import sys
import time
import uuid

import zmq
import zmq.auth

from slipway.v1 import build_pb2, envelope_pb2

endpoint, key_file, coordinator_cert, repo, commit, artifact = sys.argv[1:7]

# Slipway's key files are ZPL certificates, as pyzmq's load_certificate reads them.
public, secret = zmq.auth.load_certificate(key_file)
server, _ = zmq.auth.load_certificate(coordinator_cert)

socket = zmq.Context.instance().socket(zmq.DEALER)
socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = public, secret, server
socket.linger = 0
socket.connect(endpoint)

request = build_pb2.SubmitBuild(idempotency_key=str(uuid.uuid4()), repo_url=repo, commit=commit, artifact_name=artifact)
envelope = envelope_pb2.Envelope(
    protocol_version=1,
    type=envelope_pb2.MESSAGE_TYPE_SUBMIT_BUILD,
    message_id=uuid.uuid4().hex,
    sender="python-example",
    sent_at_unix_micros=int(time.time() * 1_000_000),
    body=request.SerializeToString(),
)
# Frame 1 is the topic (empty off PUB sockets), frame 2 the envelope.
socket.send_multipart([b"", envelope.SerializeToString()])

# A key the coordinator does not trust gets no answer at all: the handshake fails.
if not socket.poll(5_000):
    sys.exit("no reply in 5 s: coordinator down, wrong --coordinator key, or this key is not trusted")
reply = envelope_pb2.Envelope.FromString(socket.recv_multipart()[1])
if reply.type == envelope_pb2.MESSAGE_TYPE_ERROR_REPLY:
    error = envelope_pb2.ErrorReply.FromString(reply.body)
    sys.exit(f"refused: {envelope_pb2.ErrorCode.Name(error.code)}: {error.message}")
ack = build_pb2.SubmitBuildAck.FromString(reply.body)
print(ack.job_id)
