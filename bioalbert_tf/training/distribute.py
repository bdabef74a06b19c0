"""The distribution strategy for a run: TPU, several GPUs, several workers, or this machine."""

from __future__ import annotations

import dataclasses
import json
import os
import threading

from absl import logging

from bioalbert_tf.settings import setting


@dataclasses.dataclass(frozen=True)
class TpuOptions:
    """Where run_pretraining runs (its --tpu flags): not a setting of the run itself."""

    tpu: str | None = setting(
        None, "TPU name or grpc:// address; unset: GPUs / TF_CONFIG workers / CPU."
    )
    tpu_zone: str | None = setting(None, "GCE zone of the TPU.")
    gcp_project: str | None = setting(None, "GCP project of the TPU.")
    tpu_connect_timeout: int = setting(120, "Seconds to wait for the TPU before giving up.")


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


def _tpu_where(tpu: str, zone: str | None, project: str | None) -> str:
    return (
        f"--tpu={tpu!r} (--tpu_zone={zone or 'not given'}, --gcp_project={project or 'not given'})"
    )


def tpu_advice(error: BaseException, tpu: str, zone: str | None, project: str | None) -> str:
    """What went wrong while finding a TPU by name, and what to check, in one sentence."""
    import urllib.error

    name, text = type(error).__name__, str(error)
    local = "on the TPU VM itself, --tpu=local needs none of this"
    if isinstance(error, RuntimeError) and "Google API client" in text:
        return (
            f"finding a TPU by name needs the Google API client, which is not installed: "
            f"pip install -e '.[tpu]' (tpu_scripts/install.sh does); {local}"
        )
    if "DefaultCredentials" in name or "credentials" in text.lower():
        return (
            f"no Google Cloud credentials ({text[:160]}): run `gcloud auth application-default "
            f"login` or set GOOGLE_APPLICATION_CREDENTIALS; {local}"
        )
    if isinstance(error, urllib.error.URLError | OSError) and not getattr(error, "resp", None):
        return (
            f"cannot reach Google Cloud's metadata server or API ({text[:160]}): off Google "
            f"Cloud pass --tpu_zone and --gcp_project and check the network; {local}"
        )
    status = getattr(getattr(error, "resp", None), "status", None)
    if status is not None and int(status) == 404:
        return (
            f"there is no TPU {tpu!r} in zone {zone or '(the default)'} of project "
            f"{project or '(the default)'}: check `gcloud compute tpus tpu-vm list "
            f"--zone={zone or 'ZONE'}`"
        )
    if status is not None and int(status) in (401, 403):
        return (
            f"the credentials may not read TPU {tpu!r} (HTTP {status}): check the account's "
            f"TPU permissions in project {project or '(the default)'}"
        )
    return f"{name}: {text[:300]}"


def tpu_strategy(
    tpu: str, zone: str | None = None, project: str | None = None, timeout_s: float = 120.0
):
    """TPUStrategy on the TPU `tpu` (a TPU name, `local` on a TPU VM, or a grpc:// address).
    Every failure to find, reach or start it is one TPUConnectionError naming the TPU, zone and
    project and what to check."""
    import tensorflow as tf

    where = _tpu_where(tpu, zone, project)

    def resolve():
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu, zone=zone, project=project
        )
        return resolver, resolver.master()  # a TPU name is looked up here (Cloud TPU API)

    try:
        resolver, master = _bounded(resolve, timeout_s, where)
    except TPUConnectionError as e:
        raise TPUConnectionError(f"{e}: check the network and the TPU name") from None
    except Exception as e:  # RuntimeError, URLError, credentials, HttpError, ValueError ...
        raise TPUConnectionError(
            f"{where}: cannot find the TPU: {tpu_advice(e, tpu, zone, project)}"
        ) from e
    what = f"{where} at {master or 'local'}"
    try:
        _bounded(lambda: tf.config.experimental_connect_to_cluster(resolver), timeout_s, what)
        _bounded(lambda: tf.tpu.experimental.initialize_tpu_system(resolver), timeout_s, what)
    except TPUConnectionError as e:
        raise TPUConnectionError(
            f"{e}: check the TPU name, --tpu_zone/--gcp_project, and that the TPU is READY"
        ) from None
    except Exception as e:  # NotFoundError "TPUs not found in the cluster" and friends
        check = (
            "--tpu=local uses this machine's own TPU: run on the TPU VM, and check that no other "
            "process holds its TPU"
            if tpu == "local"
            else "check that the TPU is READY and that nothing else holds it"
        )
        raise TPUConnectionError(
            f"{what}: the TPU did not start ({type(e).__name__}: {str(e)[:200]}); {check}"
        ) from e
    strategy = tf.distribute.TPUStrategy(resolver)
    logging.info("TPUStrategy on %s: %d replicas", what, strategy.num_replicas_in_sync)
    return strategy


def get_strategy(options: TpuOptions = TpuOptions()):
    """--tpu -> TPUStrategy; TF_CONFIG -> MultiWorkerMirrored; >1 GPU -> Mirrored; else the
    default."""
    import tensorflow as tf

    if options.tpu:
        return tpu_strategy(
            options.tpu, options.tpu_zone, options.gcp_project, options.tpu_connect_timeout
        )
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
