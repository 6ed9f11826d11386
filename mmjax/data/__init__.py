"""Host-side data: validated numpy datasets from MMRec directories or the synthetic generator (no jax)."""

from mmjax.data.dataset import InteractionDataset, log_dataset_report
from mmjax.data.mmrec import load_mmrec_dir
from mmjax.data.synthetic import make_synthetic

__all__ = ["InteractionDataset", "load_mmrec_dir", "log_dataset_report", "make_synthetic"]
