"""labkit: the library behind the course "LLM Serving and Tokenization".

Subpackages, one concept each: ``assets`` (real models and vocabularies), ``models`` (loading a
GGUF with llama.cpp), ``tokenize``, ``quantize``, ``serve``, ``databricks``, ``costs``, ``grading``.
"""

__version__ = "0.1.0"
