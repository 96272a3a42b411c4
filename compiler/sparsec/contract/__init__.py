"""The compiler/runtime contract: schema.py is the source of truth, codegen.py writes the C++/C/JS side."""
