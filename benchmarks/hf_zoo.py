"""Hugging Face's networks, built from their configurations (random weights, nothing downloaded), against
independent counts of the same model, in one run:

    pip install transformers diffusers timm torchaudio ultralytics segmentation-models-pytorch monai einops torch_geometric \
        open_clip_torch peft efficientnet_pytorch pytorch-tabnet speechbrain  # (not archcalc's
    # dependencies; one not installed is left out)
    python benchmarks/hf_zoo.py [--memory [--amp bfloat16]] [NAME ...]

For each network: its parameters against transformers' own num_parameters(); the forward pass's FLOPs (2 x
MACs) against torch.utils.flop_counter, and a training step's (forward + backward, the loss the sum of every
output) likewise, on the meta device (on CPU tensors flop_counter counts the CPU's attention kernel as
nothing, pytorch/pytorch#195460: a model that reads a value runs on the CPU with the math kernel), with
flop_counter's convolution backward corrected for groups (its ∂W of a grouped convolution is g times what it
is); with --memory, the CPU peak of two Adam steps simulated on the meta device against the real tensors of
the same steps on the CPU (benchmarks/memory_zoo.py's tracker), with --amp under autocast (simulated by
archcalc's policy, against PyTorch's own on the real tensors).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

import archcalc

aten = torch.ops.aten
TOKENS, IMAGE = [(2, 64)], [(2, 3, 224, 224)]
IDS = ["int64:1000"]  # token ids below 1000 (every vocabulary here is larger)


class Seq2Seq(torch.nn.Module):
    """An encoder-decoder given its two token sequences as positional inputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, decoder_ids):
        return self.model(input_ids=ids, decoder_input_ids=decoder_ids)


class Keyword(torch.nn.Module):
    """A model given its one input by keyword (PatchTST's past_values)."""

    def __init__(self, model, key: str):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        return self.model(**{self.key: x})


def _zoo():
    import transformers as t

    sdpa, eager = {"attn_implementation": "sdpa"}, {"attn_implementation": "eager"}
    small = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8}
    return {  # name -> (builder, input sizes with the batch, their dtypes: None for floating-point)
        "gpt2": (lambda: t.GPT2LMHeadModel(t.GPT2Config(**sdpa)), TOKENS, IDS),
        "bert-base": (lambda: t.BertModel(t.BertConfig(**sdpa)), TOKENS, IDS),
        "distilbert": (lambda: t.DistilBertModel(t.DistilBertConfig(**sdpa)), TOKENS, IDS),
        "roberta-base": (lambda: t.RobertaModel(t.RobertaConfig(**sdpa)), TOKENS, IDS),
        "llama-gqa": (lambda: t.LlamaForCausalLM(t.LlamaConfig(
            vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, **sdpa)), TOKENS, IDS),
        "mistral": (lambda: t.MistralForCausalLM(t.MistralConfig(
            vocab_size=32000, hidden_size=512, intermediate_size=1792, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, sliding_window=32, **sdpa)), TOKENS, IDS),
        "gpt-neo": (lambda: t.GPTNeoForCausalLM(t.GPTNeoConfig(
            hidden_size=256, num_layers=4, num_heads=8, attention_types=[[["global", "local"], 2]],
            window_size=16)), TOKENS, IDS),
        "qwen3-gqa": (lambda: t.Qwen3ForCausalLM(t.Qwen3Config(  # (SDPA with enable_gqa: the CPU's flash kernel)
            vocab_size=32000, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=2, head_dim=64, **sdpa)), TOKENS, IDS),
        "big-bird": (lambda: t.BigBirdModel(t.BigBirdConfig(**small)), TOKENS, IDS),  # (a layer built in forward)
        "yoso": (lambda: t.YosoModel(t.YosoConfig(**small)), TOKENS, IDS),  # (custom autograd.Functions)
        "recurrent-gemma": (lambda: t.RecurrentGemmaModel(t.RecurrentGemmaConfig(  # (one, SqrtBoundDerivative)
            hidden_size=256, lru_width=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=8,
            vocab_size=1000, attention_window_size=16, block_types=["recurrent", "recurrent", "attention"], **sdpa)),
            TOKENS, IDS),
        "sew-d": (lambda: t.SEWDModel(t.SEWDConfig(  # (XSoftmax, XDropout; a CPU scalar in masked_fill; its
            # train mode asks the waveform's gradient, which the training step counts since it runs in train
            # mode, 0.995009 before; time masks off: they draw at random)
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, squeeze_factor=2,
            conv_dim=(32, 32, 32), conv_stride=(5, 4, 2), conv_kernel=(10, 8, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4, layerdrop=0.0, mask_time_prob=0.0)), [(2, 16000)], None),
        "opt": (lambda: t.OPTForCausalLM(t.OPTConfig(ffn_dim=1024, word_embed_proj_dim=256, **small)), TOKENS, IDS),
        "mamba": (lambda: t.MambaForCausalLM(t.MambaConfig(hidden_size=128, num_hidden_layers=2, vocab_size=1000)),
                  [(2, 32)], IDS),
        "mamba2": (lambda: t.Mamba2Model(t.Mamba2Config(  # (the chunked scan of PyTorch's reference path)
            hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16, n_groups=1, state_size=16,
            vocab_size=1000, chunk_size=16)), [(2, 32)], IDS),
        "rwkv": (lambda: t.RwkvModel(t.RwkvConfig(hidden_size=64, num_hidden_layers=2, attention_hidden_size=64,
                                                  intermediate_size=128, vocab_size=1000, context_length=64)),
                 [(2, 32)], IDS),
        "qwen3-next": (lambda: t.Qwen3NextModel(t.Qwen3NextConfig(  # (gated DeltaNet: a unit-triangular solve, and
            # experts by _grouped_mm; neither has a flop_counter formula: archcalc's count is higher by them)
            layer_types=["linear_attention", "full_attention"], linear_num_value_heads=4, linear_num_key_heads=2,
            linear_key_head_dim=16, linear_value_head_dim=16, num_experts=4, num_experts_per_tok=2,
            moe_intermediate_size=64, shared_expert_intermediate_size=64, head_dim=16, hidden_size=64,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
            vocab_size=1000, **sdpa)), [(2, 32)], IDS),
        "patchtst": (lambda: Keyword(t.PatchTSTModel(t.PatchTSTConfig(  # (BatchNorm1d over tokens, by a transpose)
            num_input_channels=3, context_length=64, patch_length=8, patch_stride=8, d_model=32,
            num_attention_heads=4, num_hidden_layers=2, ffn_dim=64)), "past_values"), [(2, 64, 3)], None),
        "t5-small": (lambda: Seq2Seq(t.T5ForConditionalGeneration(t.T5Config(
            d_model=512, num_layers=6, num_heads=8, d_ff=2048))), [(2, 32), (2, 16)], IDS),
        "bart-large": (lambda: Seq2Seq(t.BartModel(t.BartConfig(**eager))), [(2, 32), (2, 16)], IDS),
        "whisper-tiny": (lambda: t.WhisperForAudioClassification(t.WhisperConfig(
            d_model=384, encoder_layers=4, encoder_attention_heads=6, decoder_layers=4, decoder_attention_heads=6)),
                         [(2, 80, 3000)], None),
        "clip": (lambda: t.CLIPModel(t.CLIPConfig()), [(2, 16), (2, 3, 224, 224)], ["int64:1000", "float32"]),
        "vit-base": (lambda: t.ViTForImageClassification(t.ViTConfig(**sdpa)), IMAGE, None),
        "deit-base": (lambda: t.DeiTForImageClassificationWithTeacher(t.DeiTConfig(**sdpa)), IMAGE, None),
        "swin-tiny": (lambda: t.SwinForImageClassification(t.SwinConfig()), IMAGE, None),
        "convnext-tiny": (lambda: t.ConvNextForImageClassification(t.ConvNextConfig()), IMAGE, None),
        "resnet-50": (lambda: t.ResNetForImageClassification(t.ResNetConfig()), IMAGE, None),
        "segformer-b0": (lambda: t.SegformerForSemanticSegmentation(t.SegformerConfig()), [(2, 3, 128, 128)], None),
        "yolos": (lambda: t.YolosForObjectDetection(t.YolosConfig(
            hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
            image_size=[256, 256])), [(1, 3, 256, 256)], None),
        **_more_transformers(t, sdpa, eager),
    }


def _more_transformers(t, sdpa, eager):
    """Families of transformers 5.x swept in December 2026: ALiBi (BLOOM, Falcon), rotary (GPT-J, Phi, ESM), Gemma-2's
    soft-capped sliding window, DeBERTa-v2's disentangled attention, FNet's FFTs, Funnel's pooled queries, Perceiver's
    cross-attention to latents, wav2vec 2.0, DINOv2, LeViT, MobileViT, PVT-v2, PoolFormer, DPT, DETR, Pegasus."""
    tiny = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256}
    audio = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
             "conv_dim": (32, 32, 32), "conv_stride": (5, 4, 2), "conv_kernel": (10, 8, 4),
             "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "mask_time_prob": 0.0}
    return {
        "bloom": (lambda: t.BloomModel(t.BloomConfig(hidden_size=128, n_layer=2, n_head=4, vocab_size=1000)),
                  TOKENS, IDS),
        "falcon": (lambda: t.FalconModel(t.FalconConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                                        vocab_size=1000, alibi=True)), TOKENS, IDS),
        "gpt-j": (lambda: t.GPTJModel(t.GPTJConfig(n_embd=128, n_layer=2, n_head=4, rotary_dim=16, vocab_size=1000,
                                                   bos_token_id=0, eos_token_id=0)), TOKENS, IDS),
        "phi": (lambda: t.PhiModel(t.PhiConfig(vocab_size=1000, **tiny)), TOKENS, IDS),
        "gemma-2": (lambda: t.Gemma2Model(t.Gemma2Config(vocab_size=1000, head_dim=32, num_key_value_heads=2,
                                                         sliding_window=16, **tiny, **eager)), TOKENS, IDS),
        "deberta-v2": (lambda: t.DebertaV2Model(t.DebertaV2Config(vocab_size=1000, **tiny)), TOKENS, IDS),
        "fnet": (lambda: t.FNetModel(t.FNetConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                                                  intermediate_size=256)), TOKENS, IDS),
        "funnel": (lambda: t.FunnelModel(t.FunnelConfig(vocab_size=1000, d_model=128, n_head=4, d_head=32,
                                                        d_inner=256, block_sizes=[1, 1])), TOKENS, IDS),
        "esm": (lambda: t.EsmModel(t.EsmConfig(vocab_size=33, position_embedding_type="rotary", pad_token_id=1,
                                               mask_token_id=32, **tiny)), TOKENS, ["int64:33"]),
        "wav2vec2": (lambda: t.Wav2Vec2Model(t.Wav2Vec2Config(**audio)), [(2, 16000)], None),
        "dinov2": (lambda: t.Dinov2Model(t.Dinov2Config(image_size=112, patch_size=14, **tiny)), [(2, 3, 112, 112)],
                   None),
        "perceiver": (lambda: Keyword(t.PerceiverModel(t.PerceiverConfig(
            num_latents=32, d_latents=64, d_model=32, num_blocks=1, num_self_attends_per_block=2,
            num_self_attention_heads=4, num_cross_attention_heads=1)), "inputs"), [(2, 50, 32)], None),
        "levit": (lambda: t.LevitForImageClassification(t.LevitConfig()), IMAGE, None),
        "mobilevit": (lambda: t.MobileViTForImageClassification(t.MobileViTConfig()), [(2, 3, 256, 256)], None),
        "pvt-v2": (lambda: t.PvtV2ForImageClassification(t.PvtV2Config()), IMAGE, None),
        "poolformer": (lambda: t.PoolFormerForImageClassification(t.PoolFormerConfig()), IMAGE, None),
        "dpt": (lambda: t.DPTForDepthEstimation(t.DPTConfig(
            image_size=128, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
            backbone_out_indices=[0, 1, 2, 3])), [(2, 3, 128, 128)], None),
        "detr": (lambda: t.DetrForObjectDetection(t.DetrConfig(  # (its ResNet-50 backbone's own, not timm's)
            use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=t.ResNetConfig(), d_model=64,
            encoder_layers=1, decoder_layers=1, num_queries=10)), [(1, 3, 128, 128)], None),
        "pegasus": (lambda: Seq2Seq(t.PegasusModel(t.PegasusConfig(
            vocab_size=1000, d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256))), [(2, 32), (2, 16)], IDS),
    }


class Denoiser(torch.nn.Module):
    """A diffusion model's U-Net given its noisy sample, its timestep and (conditioned) the text's states."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, *text):
        return self.model(sample, timestep, *text).sample


class Autoencoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).sample


def _diffusers():
    """diffusers' U-Nets and VAE at small widths, where diffusers is installed (pip install diffusers)."""
    try:
        import diffusers as d
    except ImportError:
        return {}
    small = {"block_out_channels": (32, 64), "layers_per_block": 1, "norm_num_groups": 8}
    return {
        "unet": (lambda: Denoiser(d.UNet2DModel(
            sample_size=32, block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))), [(2, 3, 32, 32), (2,)],
            ["float32", "int64:1000"]),
        "unet-text": (lambda: Denoiser(d.UNet2DConditionModel(
            sample_size=16, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
            **small)), [(2, 4, 16, 16), (2,), (2, 7, 32)], ["float32", "int64:1000", "float32"]),
        "vae": (lambda: Autoencoder(d.AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4, **small)), [(2, 3, 64, 64)], None),
    }


TIMM = {  # name -> image size: convolutional, attention, hybrid and MLP families, at their default resolution
    "efficientnet_b0": 224, "mobilenetv3_large_100": 224, "ghostnet_100": 224, "rexnet_100": 224,
    "regnety_016": 224, "res2net50_26w_4s": 224, "dla34": 224, "cspdarknet53": 256, "hrnet_w18_small": 224,
    "convnextv2_atto": 224, "edgenext_small": 256, "repvit_m1": 224, "fastvit_t8": 256, "mobilevit_s": 256,
    "efficientformer_l1": 224, "levit_128": 224, "poolformer_s12": 224, "coatnet_0_rw_224": 224,
    "maxvit_tiny_tf_224": 224, "deit3_small_patch16_224": 224, "eva02_tiny_patch14_224": 224,
    "beit_base_patch16_224": 224, "cait_xxs24_224": 224, "crossvit_tiny_240": 240, "pit_ti_224": 224,
    "twins_svt_small": 224, "pvt_v2_b0": 224, "xcit_tiny_12_p16_224": 224, "swinv2_tiny_window8_256": 256,
    "mixer_b16_224": 224, "resmlp_12_224": 224, "botnet26t_256": 256, "halonet26t": 256,
    "gcvit_xxtiny": 224, "davit_tiny": 224, "focalnet_tiny_srf": 224, "inception_next_tiny": 224,
    "lowformer_b0": 224,  # (Q, K and V cut by a permute and a chunk: not stride 1, so the math path)
}


def _timm():
    """timm's networks (pip install timm, which needs torchvision), where timm is installed."""
    try:
        import timm
    except ImportError:
        return {}
    return {name: ((lambda n: lambda: timm.create_model(n, pretrained=False))(name), [(2, 3, size, size)], None)
            for name, size in TIMM.items()}


class Flow(torch.nn.Module):
    """RAFT with three refinement steps (grid_sample's correlation lookups, a GRU-like update each)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, first, second):
        return self.model(first, second, num_flow_updates=3)


def _detection_and_segmentation():
    """Ultralytics' YOLO (built from its YAML, pip install ultralytics) and segmentation_models_pytorch's
    decoders (pip install segmentation-models-pytorch), where installed; torchvision's segmentation networks (FCN
    and DeepLabV3 with their auxiliary heads, LR-ASPP), video networks and RAFT.
    Both count a training step in train mode, where a YOLO detection head returns its raw maps (in eval mode it
    also decodes the boxes: its DFL convolution and the anchors' arithmetic; YOLOv8n read 1.000123 while
    archcalc counted the step in eval mode)."""
    zoo = {}
    try:
        import torchvision.models.optical_flow as flow
        import torchvision.models.segmentation as segmentation
        import torchvision.models.video as video
    except ImportError:
        pass
    else:
        zoo["fcn_resnet50"] = (lambda: segmentation.fcn_resnet50(weights_backbone=None, aux_loss=True),
                               [(2, 3, 224, 224)], None)
        zoo["deeplabv3_mbv3"] = (lambda: segmentation.deeplabv3_mobilenet_v3_large(weights_backbone=None,
                                                                                   aux_loss=True),
                                 [(2, 3, 224, 224)], None)
        zoo["lraspp_mbv3"] = (lambda: segmentation.lraspp_mobilenet_v3_large(weights_backbone=None),
                              [(2, 3, 224, 224)], None)
        zoo["r2plus1d_18"] = (lambda: video.r2plus1d_18(), [(1, 3, 8, 112, 112)], None)
        zoo["swin3d_t"] = (lambda: video.swin3d_t(), [(1, 3, 8, 112, 112)], None)
        zoo["raft_small"] = (lambda: Flow(flow.raft_small()), [(1, 3, 128, 128), (1, 3, 128, 128)], None)
    try:
        from ultralytics.nn.tasks import ClassificationModel, DetectionModel
        from ultralytics.utils import LOGGER
    except ImportError:
        pass
    else:
        LOGGER.setLevel("WARNING")  # (its classifier prints a summary of its own, verbose=False or not)
        zoo["yolov8n"] = (lambda: DetectionModel("yolov8n.yaml", verbose=False), [(2, 3, 320, 320)], None)
        zoo["yolov8n-cls"] = (lambda: ClassificationModel("yolov8n-cls.yaml", verbose=False), IMAGE, None)
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return zoo
    zoo["smp-unet-r18"] = (lambda: smp.Unet("resnet18", encoder_weights=None, classes=3), [(2, 3, 256, 256)], None)
    zoo["smp-segformer"] = (lambda: smp.Segformer("mit_b0", encoder_weights=None, classes=3), [(2, 3, 256, 256)],
                            None)
    return zoo


class WithLengths(torch.nn.Module):
    """A torchaudio model that takes (input, lengths), every sequence given its full length."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device))[0]


class First(torch.nn.Module):
    """A torchaudio model whose forward returns a tuple (output, lengths or a second output): its first."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)[0]


def _torchaudio():
    """torchaudio's networks (speech, separation, music), where torchaudio is installed: wav2vec 2.0, HuBERT and
    WavLM without LayerDrop (in training it drops each layer at random, so two passes differ), Conformer and
    Emformer given full lengths, an LSTM (HDemucs, DeepSpeech) and a GRU (WaveRNN). flop_counter on the CPU,
    where Conformer (which reads the lengths) and HDemucs run, counts nothing of oneDNN's LSTM layer: HDemucs
    reads 1.034 (its BLSTM: 87 steps x 2,949,120 FLOPs a layer pair), archcalc's count being the right one.
    (Conformer read 1.181324, its attention's QKᵀ and AV, while the harness ran the CPU's flash kernel, which
    flop_counter counts as nothing, pytorch/pytorch#195460; it now runs the math kernel there.)"""
    try:
        import torchaudio.models as m
    except ImportError:
        return {}
    no_drop = {"encoder_layer_drop": 0.0}
    return {
        "wav2vec2-base": (lambda: First(m.wav2vec2_base(**no_drop)), [(2, 16000)], None),
        "hubert-base": (lambda: First(m.hubert_base(**no_drop)), [(2, 16000)], None),
        "wavlm-base": (lambda: First(m.wavlm_base(**no_drop)), [(2, 16000)], None),
        "conv-tasnet": (lambda: m.conv_tasnet_base(num_sources=2), [(2, 1, 8000)], None),
        "hdemucs-low": (lambda: m.hdemucs_low(sources=["drums", "bass", "other", "vocals"]), [(1, 2, 44100)], None),
        "wav2letter": (lambda: m.Wav2Letter(num_classes=40, input_type="waveform", num_features=1), [(2, 1, 16000)],
                       None),
        "deepspeech": (lambda: m.DeepSpeech(n_feature=80, n_hidden=256), [(2, 1, 100, 80)], None),
        "conformer": (lambda: WithLengths(m.Conformer(input_dim=80, num_heads=4, ffn_dim=128, num_layers=2,
                                                      depthwise_conv_kernel_size=31)), [(2, 100, 80)], None),
        "emformer": (lambda: WithLengths(m.Emformer(input_dim=128, num_heads=4, ffn_dim=256, num_layers=2,
                                                    segment_length=4, right_context_length=1)), [(2, 41, 128)], None),
        "wavernn": (lambda: First(m.WaveRNN(upsample_scales=[5, 5, 8], n_classes=256, hop_length=200, n_res_block=2,
                                            n_rnn=128, n_fc=128, n_hidden=64, n_output=64)),
                    [(2, 1, 600), (2, 1, 128, 7)], None),
        "squim-objective": (lambda: First(m.squim_objective_base()), [(2, 16000)], None),
    }


def _monai():
    """MONAI's medical-imaging networks (pip install monai einops), where installed: 3D segmentation (U-Net,
    SegResNet, UNETR, Swin-UNETR, DynUNet, HighResNet, MedNeXt), a 3D DenseNet-121, QuickNAT (2D, one max-pooling
    module with return_indices held by its four encoder blocks, unpooled by its decoders), a variational
    autoencoder (a random draw in forward), a diffusion U-Net (a timestep beside the image), a masked autoencoder
    (torch.multinomial picks the patches it keeps) and VoxelMorph (registration: two volumes). A wrapper keeps the
    first output of those that return several."""
    try:
        import monai.networks.nets as n
    except ImportError:
        return {}
    volume = [(2, 1, 32, 32, 32)]
    return {
        "monai-unet": (lambda: n.UNet(3, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                                      num_res_units=2), volume, None),
        "segresnet": (lambda: n.SegResNet(3, init_filters=8, in_channels=1, out_channels=2), volume, None),
        "unetr": (lambda: n.UNETR(1, 2, (32, 32, 32), feature_size=16, hidden_size=192, mlp_dim=768, num_heads=4),
                  volume, None),
        "swin-unetr": (lambda: n.SwinUNETR(in_channels=1, out_channels=2, feature_size=24, spatial_dims=3),
                       [(1, 1, 64, 64, 64)], None),
        "dynunet": (lambda: n.DynUNet(3, 1, 2, kernel_size=[3, 3, 3, 3], strides=[1, 2, 2, 2],
                                      upsample_kernel_size=[2, 2, 2]), volume, None),
        "highresnet": (lambda: n.HighResNet(3, 1, 2), volume, None),
        "mednext-s": (lambda: n.MedNeXtS(spatial_dims=3, in_channels=1, out_channels=2), volume, None),
        "densenet121-3d": (lambda: n.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2), volume, None),
        "quicknat": (lambda: n.Quicknat(num_classes=2, num_channels=1, num_filters=16, se_block="CSE"),
                     [(2, 1, 64, 64)], None),
        "var-autoencoder": (lambda: First(n.VarAutoEncoder(2, (1, 64, 64), 1, 16, channels=(8, 16, 32),
                                                           strides=(2, 2, 2))), [(2, 1, 64, 64)], None),
        "diffusion-unet": (lambda: n.DiffusionModelUNet(2, 1, 1, channels=(32, 64, 64),
                                                        attention_levels=(False, True, True), num_res_blocks=1,
                                                        num_head_channels=32),
                           [(2, 1, 32, 32), (2,)], ["float32", "int64:1000"]),
        "mae-vit": (lambda: First(n.MaskedAutoEncoderViT(1, (32, 32, 32), (8, 8, 8), hidden_size=192, mlp_dim=384,
                                                         num_heads=4, decoder_hidden_size=96, decoder_mlp_dim=192,
                                                         decoder_num_heads=4)), volume, None),
        "voxelmorph": (lambda: n.VoxelMorph(), [(1, 1, 32, 32, 32), (1, 1, 32, 32, 32)], None),
    }


class OnGraph(torch.nn.Module):
    """A PyTorch Geometric layer given the node features and the edges (edge_index) positionally."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, edge_index):
        return self.layer(x, edge_index)


def _geometric():
    """PyTorch Geometric's graph networks (pip install torch_geometric), where installed, on one graph of 1,000
    nodes of 16 features and 5,000 random edges: GCN, GraphSAGE, GIN and GAT of three layers, PNA (four
    aggregators, two scalers), TAGConv and ChebConv (which call their linear layers as lin.forward(x): no hook
    runs) and GatedGraphConv (a GRU cell a step). Messages are gathered by index and summed by scatter_add or
    scatter_reduce: element-wise work, no MACs."""
    try:
        import torch_geometric.nn as g
    except ImportError:
        return {}
    graph, kinds = [(1000, 16), (2, 5000)], ["float32", "int64:1000"]
    return {
        "gcn": (lambda: g.models.GCN(16, 64, 3, 7), graph, kinds),
        "graphsage": (lambda: g.models.GraphSAGE(16, 64, 3, 7), graph, kinds),
        "gin": (lambda: g.models.GIN(16, 64, 3, 7), graph, kinds),
        "gat": (lambda: g.models.GAT(16, 64, 3, 7, heads=4), graph, kinds),
        "pna": (lambda: g.models.PNA(16, 64, 2, 7, aggregators=["mean", "min", "max", "std"],
                                     scalers=["identity", "amplification"], deg=torch.tensor([0, 10, 50, 30, 10])),
                graph, kinds),
        "tagconv": (lambda: OnGraph(g.TAGConv(16, 32)), graph, kinds),
        "chebconv": (lambda: OnGraph(g.ChebConv(16, 32, K=3)), graph, kinds),
        "gatedgraph": (lambda: OnGraph(g.GatedGraphConv(32, 2)), [(1000, 32), (2, 5000)], kinds),
    }


def _more_libraries():
    """Other libraries' networks, each where installed: open_clip's CLIP with a ResNet-50 (its attention pool is
    F.multi_head_attention_forward projecting 2048 to 1024 wide) and a ViT-B/32 (pip install open_clip_torch),
    PEFT's LoRA on BERT (pip install peft: frozen weights, the adapters trained), lukemelas's EfficientNet-B0
    (pip install efficientnet_pytorch: padding by F.pad, a custom autograd.Function for its swish), TabNet (pip
    install pytorch-tabnet: ghost batch norm by chunks, sparsemax a custom autograd.Function) and more of
    segmentation_models_pytorch's decoders."""
    zoo = {}
    try:
        import open_clip
    except ImportError:
        pass
    else:
        pair = [(2, 3, 224, 224), (2, 77)], ["float32", "int64:49408"]
        zoo["clip-rn50"] = (lambda: open_clip.create_model("RN50", pretrained=None), *pair)
        zoo["clip-vit-b-32"] = (lambda: open_clip.create_model("ViT-B-32", pretrained=None), *pair)
    try:
        import transformers as t
        from peft import LoraConfig, get_peft_model
    except ImportError:
        pass
    else:
        zoo["lora-bert"] = (lambda: get_peft_model(t.BertModel(t.BertConfig(
            hidden_size=256, num_hidden_layers=4, num_attention_heads=8, intermediate_size=512,
            attn_implementation="sdpa")), LoraConfig(r=8, target_modules=["query", "value"], lora_dropout=0.0)),
            TOKENS, IDS)
    try:
        from efficientnet_pytorch import EfficientNet
    except ImportError:
        pass
    else:
        zoo["efficientnet-b0-lm"] = (lambda: EfficientNet.from_name("efficientnet-b0"), IMAGE, None)
    try:
        from pytorch_tabnet.tab_network import TabNetNoEmbeddings
    except ImportError:
        pass
    else:
        zoo["tabnet"] = (lambda: TabNetNoEmbeddings(54, 7, n_d=8, n_a=8, n_steps=2, mask_type="sparsemax",
                                                    virtual_batch_size=16), [(64, 54)], None)
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return zoo
    for decoder, encoder in (("FPN", "resnet34"), ("DeepLabV3Plus", "resnet34"), ("UPerNet", "resnet18"),
                             ("UnetPlusPlus", "resnet18"), ("MAnet", "resnet18"), ("PAN", "resnet18")):
        zoo[f"smp-{decoder.lower()}"] = ((lambda d, e: lambda: getattr(smp, d)(e, encoder_weights=None, classes=3))(
            decoder, encoder), [(2, 3, 256, 256)], None)
    return zoo


def _speechbrain():
    """speechbrain's speech networks, where installed (pip install speechbrain): ECAPA-TDNN and the x-vector (which
    calls each block with lengths=, then again without where it raises TypeError: TorchScript's trace, fvcore's,
    aborts on it), CRDNN (a light GRU whose state is 2N rows, made of the input's size), SepFormer's dual-path
    transformer, CNN14 (PANNs) and Conv-TasNet's mask network."""
    try:
        from speechbrain.lobes.models import CRDNN, Cnn14, ECAPA_TDNN, Xvector, conv_tasnet, dual_path
    except ImportError:
        return {}

    def sepformer():
        return dual_path.Dual_Path_Model(64, 64, dual_path.SBTransformerBlock(1, 64, 4),
                                         dual_path.SBTransformerBlock(1, 64, 4), num_layers=1, K=25, num_spks=2)

    return {
        "ecapa": (lambda: ECAPA_TDNN.ECAPA_TDNN(80, lin_neurons=192), [(2, 200, 80)], None),
        "xvector": (lambda: Xvector.Xvector(in_channels=40), [(2, 200, 40)], None),
        "crdnn": (lambda: CRDNN.CRDNN(input_shape=[None, None, 40], rnn_neurons=64, dnn_neurons=64,
                                      cnn_channels=(16, 32)), [(2, 100, 40)], None),
        "sepformer": (sepformer, [(2, 64, 200)], None),
        "cnn14": (lambda: Cnn14.Cnn14(mel_bins=64, emb_dim=512), [(2, 100, 64)], None),
        "tasnet-mask": (lambda: conv_tasnet.MaskNet(N=64, B=32, H=64, P=3, X=3, R=2, C=2), [(2, 64, 100)], None),
    }


def _loss(output) -> torch.Tensor:
    """Every floating-point output summed, at any depth (a ModelOutput's tuples of every layer's states, YOLOv10's
    dict of two heads): a loss every output leads to, as archcalc's --pass train takes it."""
    return sum(v.float().sum() for v in _tensors(output) if v.is_floating_point())


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):  # (a ModelOutput too)
        output = list(output.values())
    return [t for item in output for t in _tensors(item)] if isinstance(output, (list, tuple)) else []


def _inputs(sizes, dtypes, device: str) -> list[torch.Tensor]:
    kinds = dtypes if dtypes and len(dtypes) == len(sizes) else [(dtypes or [None])[0]] * len(sizes)
    return [torch.randint(0, int(kind.partition(":")[2] or 1000), s, device=device) if kind and kind.startswith("int")
            else torch.randn(s, device=device) for s, kind in zip(sizes, kinds)]


def _flop_counter(make, sizes, dtypes) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs as torch.utils.flop_counter counts them, on the meta device (on the
    CPU where the model reads a value, with the math attention kernel, whose products it counts as on meta), its
    convolution backward corrected for groups (_conv_backward)."""
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = make().train()
            with FlopCounterMode(display=False, custom_mapping={aten.convolution_backward: _conv_backward}) as c, \
                    (sdpa_kernel(SDPBackend.MATH) if device == "cpu" else contextlib.nullcontext()):
                y = model(*_inputs(sizes, dtypes, device))
                forward = c.get_total_flops()
                _loss(y).backward()
            return forward, c.get_total_flops()
        except (NotImplementedError, RuntimeError, ValueError):  # (ValueError: x.type(meta_tensor.type()))
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


def _conv_backward(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                   _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """∂x and ∂W of a convolution, each as many multiply-accumulates as its forward. flop_counter's own formula
    (PyTorch 2.13) multiplies a grouped convolution's ∂W by all C_in channels, not C_in/g (tests/test_backward.py;
    a division by g was proposed in pytorch/pytorch#183405): ConvNeXt's and Mamba's depthwise convolutions read
    0.34 and 0.65 with it."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--amp", default=None, help="with --memory: the steps under torch.autocast('cpu', AMP)")
    options = parser.parse_args()
    zoo = {**_zoo(), **_diffusers(), **_timm(), **_torchaudio(), **_detection_and_segmentation(), **_monai(),
           **_geometric(), **_more_libraries(), **_speechbrain()}
    print(f"{'model':14s} {'params':>12s} {'/theirs':>8s} {'forward GFLOPs':>14s} {'/flop_counter':>13s} "
          f"{'train GFLOPs':>12s} {'/flop_counter':>13s}" + (f" {'CPU peak MiB':>12s} {'/real':>8s}"
                                                              if options.memory else "") + f" {'s':>5s}")
    for name in options.names or zoo:
        make, sizes, dtypes = zoo[name]
        start = time.perf_counter()
        torch.manual_seed(0)
        try:
            model = make()
        except Exception as error:  # (a network this library's version does not have: timm's newest, say)
            print(f"{name:14s} not built here: {type(error).__name__}: {str(error).splitlines()[0][:100]}", flush=True)
            continue
        a = archcalc.analyze(model, sizes, input_dtypes=dtypes, backward=True)
        forward, train = _flop_counter(make, sizes, dtypes)
        ours_train = 2 * (a.totals.macs + a.totals.backward_macs)
        inner = model.model if isinstance(model, (Seq2Seq, Denoiser, Autoencoder)) else model
        theirs = inner.num_parameters() if hasattr(inner, "num_parameters") else \
            sum(p.numel() for p in inner.parameters())  # (timm's: PyTorch's own count of the module's parameters)
        line = (f"{name:14s} {a.totals.params:12,d} {a.totals.params / theirs:8.6f} "
                f"{a.totals.flops / 1e9:14.3f} {a.totals.flops / forward:13.6f} {ours_train / 1e9:12.3f} "
                f"{ours_train / train:13.6f}")
        if options.memory:
            import memory_zoo
            from archcalc.models.user import example_entry, module_entry

            if len({s[0] for s in sizes}) > 1:  # (no common batch, a graph's nodes and edges: example inputs)
                examples = tuple(_inputs(sizes, dtypes, "cpu"))
                simulated = archcalc.memory(model, inputs=examples, optimizer="adam", amp=options.amp).peak.allocated
                real = memory_zoo.real_peak(example_entry(model, examples), 1, options.amp, optimizer="adam")
            else:
                size = sizes[0][1:] if len(sizes) == 1 else [s[1:] for s in sizes]
                simulated = archcalc.memory(model, sizes, input_dtypes=dtypes, optimizer="adam",
                                            amp=options.amp).peak.allocated
                real = memory_zoo.real_peak(module_entry(model, size), sizes[0][0], options.amp, size, dtypes,
                                            "adam")
            line += f" {simulated / 2**20:12.1f} {real / simulated:8.6f}"
        print(f"{line} {time.perf_counter() - start:5.1f}", flush=True)


if __name__ == "__main__":
    main()
