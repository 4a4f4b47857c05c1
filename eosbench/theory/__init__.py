"""The mathematics the baselines share, apart from the plumbing: flows of the loss landscape
(``flows``: gradient flow and its edge-of-stability clamp), the UV model's two-step map and its orbits
(``uvmap``) and central flow's semidefinite complementarity problem (``sdcp``).

Each module implements equations stated in docs/theory.md; nothing here touches the store, the runner or
the command line.
"""
