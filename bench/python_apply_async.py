"""Python Celery's own producer on the same broker, as the baseline users would otherwise pick.

    python3 bench/python_apply_async.py confirm|noconfirm N QUEUE [BROKER_URL]

Sends `bench.noop(i, 2, user=..., action=..., size=512)` N times with `apply_async` to QUEUE and
prints one JSON line. `confirm` sets `broker_transport_options={"confirm_publish": True}` (py-amqp
then waits for RabbitMQ's ack after every publish: the guarantee celery-edge gives); `noconfirm`
is Celery's default (the publish returns once written to the socket). Connection set-up and the
first publish (queue declaration) happen before the clock starts.
"""
import json
import sys
import time

from celery import Celery


def main() -> None:
    mode, n, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    broker = sys.argv[4] if len(sys.argv) > 4 else "amqp://guest:guest@127.0.0.1:5672//"
    if mode not in ("confirm", "noconfirm"):
        raise SystemExit("mode must be confirm or noconfirm")
    app = Celery("bench", broker=broker)
    if mode == "confirm":
        app.conf.broker_transport_options = {"confirm_publish": True}

    @app.task(name="bench.noop")
    def noop(*args, **kwargs):  # never runs: nobody consumes the bench queue
        return None

    kwargs = {"user": "u-123", "action": "resize", "size": 512}
    noop.apply_async(args=[-1, 2], kwargs=kwargs, queue=queue)  # connect + declare, off the clock

    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        noop.apply_async(args=[i, 2], kwargs=kwargs, queue=queue)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0

    import celery
    import kombu
    import amqp

    print(json.dumps({
        "mode": mode,
        "n": n,
        "seconds": seconds,
        "cpuSeconds": cpu_seconds,
        "warmup": 1,
        "versions": {"python": sys.version.split()[0], "celery": celery.__version__, "kombu": kombu.__version__, "amqp": amqp.__version__},
    }))


if __name__ == "__main__":
    main()
