"""heatcheck's own tests.

This file makes ``tests`` a regular package so that ``tests.realmodel`` imports: tf-keras-vis
installs a top-level package named ``tests`` into site-packages, which would otherwise win
over this folder. pytest (rootdir conftest, prepend import mode) and the subprocesses the
tests start (cwd = the repository) put the repository root first on ``sys.path``.
"""
