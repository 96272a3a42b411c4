"""The .spx artifact: opcodes shared with the C++ runtime, and the writer."""
