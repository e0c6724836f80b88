"""A gRPC C-core xDS client (Debian's python3-grpcio) for the ADS server conformance test.

Usage: GRPC_XDS_BOOTSTRAP=<file> python3 xds-python-client.py <target> <method> <payload>

Makes one unary call with raw bytes (no generated stubs) over <target> (e.g. xds:///echo) and
prints one JSON line: {"ok": true, "response": "<utf-8>"} or {"ok": false, "code": "...",
"details": "..."}. It then keeps the channel, and so its xDS watches, open until stdin closes,
so the test can push more resources to this client and read its ACKs or NACKs. Exit code 0
whatever the call's outcome; the JSON line says.
"""
import json
import sys

import grpc


def main() -> int:
    target, method, payload = sys.argv[1], sys.argv[2], sys.argv[3]
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        response = call(payload.encode(), timeout=10, wait_for_ready=True)
        result = {"ok": True, "response": response.decode("utf-8", "replace")}
    except grpc.RpcError as e:
        result = {"ok": False, "code": str(e.code()), "details": e.details()}
    print(json.dumps(result), flush=True)
    sys.stdin.read()  # until the test closes stdin
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
