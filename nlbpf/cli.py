"""Placeholder until the CLI lands."""
def main():
    print("nlbpf")
