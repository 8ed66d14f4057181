"""The converter's steps, the same for every review source: read -> split (+ k-core) -> train-only
features -> encode -> write.

A source (``google_local``, ``yelp``) only maps its JSON lines into the neutral records of
``records`` (:class:`~.records.Business`, :class:`~.records.Review`, a counted :class:`~.records.Skip`)
through a :class:`~.source.Source`; everything below is shared. Modules, in the order the data goes
through them:

- ``jsonl`` (bytes -> numbered lines -> JSON objects, bad lines counted) and ``values`` (ids RecBole
  reads back, numbers, category tokens);
- ``reading``: pass 1 (kept records without their texts, duplicates and re-reviews dropped and
  counted) and pass 2 (the texts of the train rows that feed a user or history text);
- ``split``: the time or random split and the k-core counted on train rows;
- ``history``: which rows a user text needs, and each train row's leak-free history text;
- ``features``: every feature from TRAIN rows only, and the checked encoding;
- ``write``: the atomic files, side files, NAME.yaml and REPORT.md;
- ``options``: :class:`~.options.ConvertOptions`, the one declaration of every option (the command
  line is built from it);
- ``pipeline``: ``convert(source, reviews, meta, name, out_dir, options)``;
- ``verify``: load a written dataset with RecBole (``--verify``).

What the output holds and promises: ``recbole_dlrrec.data.google_local``'s docstring (the same
for every source, apart from the input fields).
"""
