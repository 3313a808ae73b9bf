"""VQA-RAD (radiology), closed questions only: AdaptLLM/biomed-VQA-benchmark, config VQA_RAD, split test."""

from medbridge.data.vqa.closed import closed_adapter

ADAPTER = closed_adapter("vqa_rad", "VQA_RAD", "vqa_rad_closed", "radiology", "this radiograph")
