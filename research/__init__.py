"""Studies of the demo's recipe, outside the library: masked-LM learning curves (ours and
transformers' PyTorch ALBERT on the same records) and the training signals a fill-mask answer
gets. What they found is in docs/notes/demo_recipe.md; `make bench` does not run them."""
