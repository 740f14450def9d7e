"""Jobs and blocks: job states shared by every provider, and block scaling."""
