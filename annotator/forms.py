"""The admin pages' forms: they check and convert what was posted; the services do the work."""

from __future__ import annotations

from django import forms

from annotator.models import PROJECT_SETTINGS, Project
from annotator.selectors.projects import annotators_all
from annotator.services.imports import CAPTION_FORMATS

# The annotation page renews its lease every 30 s: a shorter lease would lapse between two renewals.
LEASE_SECONDS_MIN = 60


class ProjectCreateForm(forms.ModelForm):
    overlap = forms.IntegerField(
        min_value=1, initial=1, label="Overlap (k)", help_text="how many annotators correct each caption"
    )
    lease_seconds = forms.IntegerField(
        min_value=LEASE_SECONDS_MIN,
        initial=300,
        label="Lease (seconds)",
        help_text="how long a task stays with an annotator who stops working on it; the page renews it every 30 s",
    )
    threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.5,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="p_bad above which a word is highlighted",
    )

    class Meta:
        model = Project
        fields = list(PROJECT_SETTINGS)
        labels = {
            "arm_weight_tokens": "Token highlights",
            "arm_weight_binary": "Binary flag",
            "arm_weight_none": "No highlight",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "annotators": forms.CheckboxSelectMultiple}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["annotators"].queryset = annotators_all()
        self.fields["annotators"].help_text = "members of the group `annotator` who may take this project's tasks"

    def clean(self) -> dict:
        cleaned = super().clean()
        weights = [cleaned.get(name) for name in ("arm_weight_tokens", "arm_weight_binary", "arm_weight_none")]
        if all(weight == 0 for weight in weights):
            # On a field, so the database constraint saying the same is not reported a second time.
            self.add_error("arm_weight_tokens", "give at least one arm a weight above 0: every task needs an arm")
        return cleaned


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.Field):
    """Every file chosen in one input; an empty or broken file is left to the import to report by name."""

    widget = MultipleFileInput

    def to_python(self, data: object) -> list:
        return [upload for upload in data or [] if upload]


class ImageUploadForm(forms.Form):
    files = MultipleFileField(
        widget=MultipleFileInput(attrs={"accept": "image/*,.zip"}),
        error_messages={"required": "choose one or more images or .zip files to upload"},
        help_text="PNG, JPEG, GIF, BMP, WebP or TIFF, and .zip files of them; more than 100 files: zip them",
    )


class CaptionImportForm(forms.Form):
    file = forms.FileField(
        error_messages={"required": "choose a caption file to import"},
        widget=forms.FileInput(attrs={"accept": ".jsonl,.csv,.json"}),
    )
    file_format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "from the file name (.jsonl, .csv, .json)"), *CAPTION_FORMATS.items()],
    )
