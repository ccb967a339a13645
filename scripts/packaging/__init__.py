"""From a trained pipeline to an installable wheel, with the test scores in its meta."""
