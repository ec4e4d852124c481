"""What every run needs around the model: one error type and the command wrapper that reports it, the command
grammar every task speaks (``command_line``) and its ``KEY=VALUE`` overrides (``overrides``), output-folder
policy, run records and atomic writes, YAML read as data, image reading, and the cost of a run (parameters, FLOPs,
time, memory). The bottom floor: it imports torch, PIL and PyYAML, and nothing of this project.
"""
from .errors import (USER_ERROR_EXIT, LossDiverged, UserError, config_syntax_named, error_message, require_device,
                     run_command)
from .output_dir import finished_run_kept, prepare_run_dir, refuse_inputs_in
from .run_record import (atomic_torch_save, atomic_write, atomic_write_json, keep_log_before, read_run_record,
                         remove_torn, run_lifecycle, write_run_record)

__all__ = [
    "UserError", "USER_ERROR_EXIT", "LossDiverged", "error_message", "run_command", "config_syntax_named",
    "require_device",
    "atomic_write", "atomic_torch_save", "atomic_write_json", "remove_torn", "keep_log_before", "write_run_record",
    "read_run_record",
    "run_lifecycle", "prepare_run_dir", "refuse_inputs_in", "finished_run_kept",
]
