"""The Cloud Function's source directory; a package only so that the test suite can import `functions.main`."""
