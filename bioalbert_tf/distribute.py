"""The distribution strategy for a run: TPU, several GPUs, several workers, or this machine."""

from __future__ import annotations

import json
import os
import threading

from absl import logging


class TPUConnectionError(RuntimeError):
    pass


def _bounded(fn, timeout_s: float, what: str):
    """Runs fn in a daemon thread; raises TPUConnectionError if it does not return in time
    (a TPU address that nobody answers makes TensorFlow wait forever)."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TPUConnectionError(f"{what} did not answer within {timeout_s:.0f} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def tpu_strategy(
    tpu: str, zone: str | None = None, project: str | None = None, timeout_s: float = 120.0
):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu, zone=zone, project=project
        )
    except (ValueError, RuntimeError) as e:
        raise TPUConnectionError(f"--tpu={tpu!r}: cannot resolve the TPU ({e})") from e
    what = f"--tpu={tpu!r} ({resolver.master() or 'local'})"
    try:
        _bounded(lambda: tf.config.experimental_connect_to_cluster(resolver), timeout_s, what)
        _bounded(lambda: tf.tpu.experimental.initialize_tpu_system(resolver), timeout_s, what)
    except TPUConnectionError as e:
        raise TPUConnectionError(
            f"{e}: check the TPU name, --tpu_zone/--gcp_project, and that the TPU is READY"
        ) from None
    except Exception as e:  # NotFoundError "TPUs not found in the cluster" and friends
        raise TPUConnectionError(f"{what}: {type(e).__name__}: {e}") from e
    strategy = tf.distribute.TPUStrategy(resolver)
    logging.info("TPUStrategy on %s: %d replicas", what, strategy.num_replicas_in_sync)
    return strategy


def get_strategy(
    tpu: str | None = None,
    tpu_zone: str | None = None,
    gcp_project: str | None = None,
    connect_timeout_s: float = 120.0,
):
    """--tpu -> TPUStrategy; TF_CONFIG -> MultiWorkerMirrored; >1 GPU -> Mirrored; else the default."""
    import tensorflow as tf

    if tpu:
        return tpu_strategy(tpu, tpu_zone, gcp_project, connect_timeout_s)
    if os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        logging.info("MultiWorkerMirroredStrategy over %s", cluster)
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        logging.info("MirroredStrategy over %d GPUs", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_accelerated(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.TPUStrategy) or bool(
        tf.config.list_logical_devices("GPU")
    )
