"""xTB work chains: GFN-xTB labels computed in-process by tblite, in batches of frames per job."""
