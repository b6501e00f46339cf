"""The HTTP face: parse, call the service, render. Thin."""
