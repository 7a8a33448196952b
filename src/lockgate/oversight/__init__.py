"""Human oversight: requests and tool calls held for a reviewer. See docs/oversight.md."""
