"""Compare and explain brain-MRI tumor segmentation models on the LGG MRI Segmentation dataset."""
