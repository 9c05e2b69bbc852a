"""GLUE data: loading (hub or local Parquet), stratified subsets, tokenisation, loaders."""
from prunepeft.data.glue import ENV_DATA_DIR, load_raw_splits, resolve_data_dir
from prunepeft.data.subsets import stratified_indices, stratified_subset, subset_count
from prunepeft.data.task_data import TaskData, build_task_data
from prunepeft.data.tokenize import clear_cache, make_loader, tokenize_split

__all__ = [
    "ENV_DATA_DIR",
    "TaskData",
    "build_task_data",
    "clear_cache",
    "load_raw_splits",
    "make_loader",
    "resolve_data_dir",
    "stratified_indices",
    "stratified_subset",
    "subset_count",
    "tokenize_split",
]
