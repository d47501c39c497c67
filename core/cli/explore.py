"""``python -m core embed|similar``: embeddings, the 2-D map and "more like this".

The parsers; the handlers are in ``core/cli/commands/explore.py``.
"""

from __future__ import annotations

FROM_HELP = ("the embedder: pixels, a run id (or run:ID), or efficientnet_lite0:imagenet "
             "(default: the ImageNet backbone for photos, else the dataset's best finished "
             "run, else pixels)")


def register(sub, common) -> None:
    """Add the ``embed`` and ``similar`` commands to the subparsers ``sub``, sharing the
    ``common`` options."""
    p = sub.add_parser("embed", parents=[common], help="compute a dataset's embeddings and map",
                       description="Embed every image of a dataset (only images whose content "
                                   "is new since the last time), store the vectors in the "
                                   "workspace and the instant PCA map; --umap also computes "
                                   "the UMAP map, --background runs all of it as a job that "
                                   "outlives this command (as the Explore page does).")
    p.add_argument("dataset")
    p.add_argument("--from", dest="embedder", metavar="EMBEDDER", help=FROM_HELP)
    p.add_argument("--umap", action="store_true", help="also compute the UMAP map (slow)")
    p.add_argument("--background", action="store_true",
                   help="start a background job (embeddings, PCA, index, UMAP) and return")
    p.add_argument("--status", action="store_true",
                   help="print the dataset's embedding job status and return")
    p.add_argument("--job", action="store_true", help="(internal) be the background job")
    p.set_defaults(func="core.cli.commands.explore:cmd_embed")

    p = sub.add_parser("similar", parents=[common], help="the images most like an image or file",
                       description="The k images of a dataset nearest to one of its images "
                                   "(by id) or to an image file, by cosine distance between "
                                   "embeddings (computed first when missing). --json prints a "
                                   "list of {image_id, label, split, distance}.")
    p.add_argument("dataset")
    p.add_argument("image", metavar="IMAGE_ID_OR_FILE")
    p.add_argument("--k", type=int, default=20, help="how many neighbours (default 20)")
    p.add_argument("--from", dest="embedder", metavar="EMBEDDER", help=FROM_HELP)
    p.set_defaults(func="core.cli.commands.explore:cmd_similar")
