"""The labeling and review tool for quality engineers (`inspection label`).

Modules, one concept each:
    errors       the tool's errors on the project's exception tree
    users        the users file: roles and scrypt password hashes (`inspection users add`)
    login_guard  login checks with rate limiting and a log of failures
    workspace    where the tool keeps its state for a (possibly read-only) dataset
    catalog      the dataset's images, classes and the append-only label history (SQLite)
    browse       filters and pagination over the catalog
    thumbnails   the thumbnail cache
    predictions  model-assisted labeling: the bundle's predictions per image, cached
    heatmap      occlusion heatmap of what drove the bundle's decision
    review       review by exception of a lot in the station archive, dispositions, sign-off
    export       the manifest and the training-ready folder-per-class copy
    context      what the event handlers share, and per-session state on the server
    handlers     action -> Gradio event handler (per-session state in, refusals as messages)
    label_tab    the Label tab: keyboard labeling, filters, grid, bulk assign
    review_tab   the Review tab: exceptions, heatmaps, dispositions, sign-off, export
    app          the Gradio app and server launch (imported only by `inspection label`)
"""
