"""The project's commands (`python -m scripts.<command>`) and the stage packages behind them."""
