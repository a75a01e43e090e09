"""The ASIC flow: memories as SRAM macros, standard-cell synthesis, static timing,
power from a real workload, gate-level simulation and layout (``eie asic``).

Stands on :mod:`eie.hw` (the design) and :mod:`eie.sim` (the testbench), beside
:mod:`eie.boards` (the FPGA flow). See ``docs/asic.md``.
"""
