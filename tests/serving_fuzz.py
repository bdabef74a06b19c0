"""Runs requests through `tf.saved_model.load` in its own process, for tests/test_serving_fuzz.py:
a request that crashes TensorFlow ends this process, not the test's.

stdin: JSON {"models": {task: SavedModel folder}, "runs": [{"task", "signature", "inputs": {key:
nested list}, ["shapes": {key: dims}], ["latin1": true]}]}, as tests/tf_c_api.py takes them.
stdout (last line): JSON {"results": [{key: {"shape", "value"}} or {"error": {"type",
"message"}}]}; strings travel as latin-1 text, as there.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def to_tensor(tf, value, dtype, shape=None, latin1=False):
    if dtype == tf.string:
        flat = np.array(value, dtype=object).reshape(-1).tolist() if value else []
        data = [s.encode("latin-1" if latin1 else "utf-8") for s in flat]
        array = np.array(data, dtype=object)
    else:
        array = np.array(value, dtype=dtype.as_numpy_dtype)
    if shape is not None:
        array = array.reshape(shape)
    elif dtype == tf.string:
        array = array.reshape(np.array(value, dtype=object).shape)
    return tf.constant(array, dtype=dtype)


def plain(array: np.ndarray):
    if array.dtype.kind in "SO":
        return [b.decode("latin-1") for b in array.reshape(-1).tolist()]
    return array.reshape(-1).tolist()


def main(request: dict) -> dict:
    import tensorflow as tf

    from bioalbert_tf.serving import export

    models = {task: export.load(path) for task, path in request["models"].items()}
    results = []
    for run in request["runs"]:
        fn = models[run["task"]].signatures[run["signature"]]
        specs = fn.structured_input_signature[1]
        shapes = run.get("shapes", {})
        try:
            inputs = {
                k: to_tensor(tf, v, specs[k].dtype, shapes.get(k), run.get("latin1", False))
                for k, v in run["inputs"].items()
            }
            outputs = fn(**inputs)
            results.append(
                {k: {"shape": list(v.shape), "value": plain(v.numpy())} for k, v in outputs.items()}
            )
        except tf.errors.OpError as e:
            results.append(
                {
                    "error": {
                        "type": type(e).__name__,
                        "code": e.error_code,
                        "message": e.message[:500],
                    }
                }
            )
    return {"results": results}


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
