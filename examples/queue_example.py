"""The queue API (FuriosaAI's ``create_queue`` example): submit with a context, receive in any order.

Run:  python examples/queue_example.py
"""

from __future__ import annotations

import threading

import numpy as np

import nnperf


def main() -> None:
    submitter, receiver = nnperf.create_queue(
        "zoo:mnist", device="cpu(1)*2", workers=2, input_queue_size=100, output_queue_size=100
    )
    rng = np.random.default_rng(0)
    images = rng.standard_normal((32, 1, 1, 28, 28)).astype(np.float32)

    def submit_all() -> None:
        for idx, image in enumerate(images):
            submitter.submit(image, context=idx)
        submitter.close()  # the receiver ends after the last result

    producer = threading.Thread(target=submit_all)
    producer.start()
    predictions = {}
    for context, outputs in receiver:  # completion order may differ from submission order
        predictions[context] = int(outputs[0].argmax())
    producer.join()
    receiver.close()
    print(
        f"received {len(predictions)} results; first predictions:",
        [predictions[i] for i in range(8)],
    )


if __name__ == "__main__":
    main()
