"""The reference machine's stores, shipped with the package: the committed timing runs
(``reference.sqlite``, made by ``scripts/refresh-reference.sh`` from reports/) that
``dynbench report --reference`` sets beside the user's figures."""
