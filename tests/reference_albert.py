"""Test oracle: google-research/albert create_pretraining_data.py at HEAD (the pair/SOP/truncation
logic, the whole-word rule `_is_start_piece_sp` and the masking), transcribed in its original
list-mutating style (tokens as lists, `del tokens[0]`, `pop()`), with random_next_sentence=False.
Our streamed, count-based implementation must consume the same random draws and give the same
instances; the tests compare them one by one.
"""

from __future__ import annotations

CLS, SEP = 2, 3


def is_start_piece_sp(piece):
    """`_is_start_piece_sp` at HEAD: the full alphabet (the first release lacked "x", fixed in
    December 2019), and the bytes of "€" and "£" added to the special pieces, as it does."""
    special_pieces = set(list('!"#$%&"()*+,-./:;?@[\\]^_`{|}~'))
    special_pieces.add("€".encode())
    special_pieces.add("£".encode())
    english_chars = set(list("abcdefghijklmnopqrstuvwxyz"))
    if (  # noqa: SIM103 (the reference's own form)
        piece.startswith("\u2581")
        or piece.startswith("<")
        or piece in special_pieces
        or not all([str(i).lower() in english_chars.union(special_pieces) for i in piece])  # noqa: C419
    ):
        return True
    else:
        return False


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


def create_instances_from_document(
    all_documents, document_index, max_seq_length, short_seq_prob, rng
):
    """Returns [(tokens, segment_ids, is_random_next)] before masking."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])
                tokens_b = []
                if len(current_chunk) == 1:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    num_unused_segments = len(current_chunk) - a_end
                    i -= num_unused_segments
                elif rng.random() < 0.5:
                    is_random_next = True
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                    tokens_a, tokens_b = tokens_b, tokens_a
                else:
                    is_random_next = False
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert len(tokens_a) >= 1
                assert len(tokens_b) >= 1
                tokens = [CLS] + tokens_a + [SEP]
                segment_ids = [0] * (len(tokens_a) + 2)
                tokens += tokens_b + [SEP]
                segment_ids += [1] * (len(tokens_b) + 1)
                instances.append((tokens, segment_ids, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def reference_masked_lm(
    tokens,
    is_start,
    masked_lm_prob,
    max_predictions_per_seq,
    vocab_size,
    rng,
    ngram=3,
    mask_id=4,
    choose_n=None,
):
    """The reference's create_masked_lm_predictions (whole-word, n-gram, favor_shorter_ngram),
    with its full pre-shuffled n-gram list. The reference draws n with numpy's global RNG
    (`np.random.choice(ngrams, p=pvals)`); pass that as `choose_n` to reproduce its cost; by
    default n is drawn from `rng`."""
    cand_indexes = []
    token_boundary = [0] * len(tokens)
    for i, token in enumerate(tokens):
        if token in (CLS, SEP):
            token_boundary[i] = 1
            continue
        if len(cand_indexes) >= 1 and not is_start[token]:
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
            if is_start[token]:
                token_boundary[i] = 1
    output_tokens = list(tokens)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    pvals = [1.0 / n for n in range(1, ngram + 1)]
    total = sum(pvals)
    pvals = [p / total for p in pvals]
    ngram_indexes = []
    for idx in range(len(cand_indexes)):
        ngram_indexes.append([cand_indexes[idx : idx + n] for n in range(1, ngram + 1)])
    rng.shuffle(ngram_indexes)
    masked_lms = []
    covered_indexes = set()
    spans = []
    for cand_index_set in ngram_indexes:
        if len(masked_lms) >= num_to_predict:
            break
        if choose_n is not None:
            n = choose_n(pvals)
        else:
            r, n, acc = rng.random(), 1, pvals[0]
            while r >= acc and n < ngram:
                n += 1
                acc += pvals[n - 1]
        index_set = sum(cand_index_set[n - 1], [])
        words = len(cand_index_set[n - 1])
        n -= 1
        while len(masked_lms) + len(index_set) > num_to_predict:
            if n == 0:
                break
            index_set = sum(cand_index_set[n - 1], [])
            words = len(cand_index_set[n - 1])
            n -= 1
        if len(masked_lms) + len(index_set) > num_to_predict:
            continue
        if any(index in covered_indexes for index in index_set):
            continue
        spans.append(words)
        for index in index_set:
            covered_indexes.add(index)
            if rng.random() < 0.8:
                masked_token = mask_id
            elif rng.random() < 0.5:
                masked_token = tokens[index]
            else:
                masked_token = rng.randint(0, vocab_size - 1)
            output_tokens[index] = masked_token
            masked_lms.append((index, tokens[index]))
    masked_lms.sort()
    return (
        output_tokens,
        [p for p, _ in masked_lms],
        [t for _, t in masked_lms],
        token_boundary,
        spans,
    )
