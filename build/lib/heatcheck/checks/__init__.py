"""The computations behind the audits: calibrated decisions, localisation with its controls,
model and data randomisation (sanity), perturbations (stability), deletion and insertion
(faithfulness), and the comparison with an accepted baseline. numpy and TensorFlow; no pytest."""
