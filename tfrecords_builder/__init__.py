"""Corpus -> SentencePiece vocabulary -> ALBERT MLM + SOP pretraining TFRecords."""
