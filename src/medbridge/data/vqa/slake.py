"""SLAKE (radiology: CT, MRI, X-ray), closed questions only: AdaptLLM/biomed-VQA-benchmark, config SLAKE, test."""

from medbridge.data.vqa.closed import closed_adapter

ADAPTER = closed_adapter("slake", "SLAKE", "slake_closed", "radiology", "this CT image")
